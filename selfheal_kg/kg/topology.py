"""The topology graph: declared Turtle files, what survives a reload, and read helpers.

Writing span-discovered edges lives in :mod:`selfheal_kg.kg.discovery`; its names are
re-exported here, where callers have always found them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import rdflib
from rdflib import RDF, RDFS, BNode, Literal, URIRef
from rdflib.plugins.parsers.notation3 import BadSyntax

from selfheal_kg.errors import TurtleSyntaxError
from selfheal_kg.kg.discovery import (
    Conflict,
    DiscoverySync,
    EdgeLike,
    FoundEdge,
    ShapesSource,
    add_discovered_edges,
)
from selfheal_kg.kg.namespaces import SHK, SPARQL_PREFIXES, TOPOLOGY_GRAPH
from selfheal_kg.kg.node_classes import NODE_CLASS_IRIS, NODE_CLASSES
from selfheal_kg.kg.store import KnowledgeStore, SelectResult, Triple

__all__ = [
    "NODE_CLASSES",
    "Conflict",
    "DiscoverySync",
    "EdgeLike",
    "FoundEdge",
    "ShapesSource",
    "add_discovered_edges",
    "declared_triples",
    "discovered_triples",
    "edges",
    "nodes",
    "parse_turtle",
]


def parse_turtle(path: Path, *, skolemize: bool = False) -> rdflib.Graph:
    """Parse one Turtle file; raise ``TurtleSyntaxError`` with the file and 1-based line.

    Blank nodes are refused, unless ``skolemize`` (ontology and shapes, whose property shapes
    and lists are blank nodes by nature) turns them into well-known genid IRIs.
    """
    graph = rdflib.Graph()
    try:
        graph.parse(path, format="turtle")
    except BadSyntax as exc:
        raise TurtleSyntaxError(
            str(path), f"Turtle syntax error: {exc._why}", line=exc.lines + 1
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TurtleSyntaxError(str(path), f"cannot read: {exc}") from exc
    except Exception as exc:  # rdflib raises assorted errors (bad IRIs, bad escapes ...)
        raise TurtleSyntaxError(str(path), f"Turtle error: {exc}") from exc
    if skolemize:
        return graph.skolemize(authority="https://w3id.org", basepath="/selfheal-kg/genid/")
    for t in graph:
        if any(isinstance(x, BNode) for x in t):
            raise TurtleSyntaxError(str(path), f"blank node in {t!r}: name every node with an IRI")
    return graph


def declared_triples(paths: Sequence[Path]) -> list[Triple]:
    """Parse declared topology files; add origin "declared" and a label from serviceName."""
    graph = rdflib.Graph()
    for path in paths:
        graph += parse_turtle(path)
    for node in set(graph.subjects(RDF.type, None)):
        types = set(graph.objects(node, RDF.type))
        if not types & NODE_CLASS_IRIS:
            continue
        if graph.value(node, SHK.origin) is None:
            graph.add((node, SHK.origin, Literal("declared")))
        name = graph.value(node, SHK.serviceName)
        if graph.value(node, RDFS.label) is None and name is not None:
            graph.add((node, RDFS.label, Literal(str(name))))
    return list(graph)


def discovered_triples(store: KnowledgeStore, declared: Sequence[Triple]) -> list[Triple]:
    """Return the discovered part of the stored topology that survives a reload of ``declared``.

    Discovered nodes that are now declared are dropped (declared wins), and so are observed
    calls whose ends are no longer nodes, or whose edge is now declared.
    """
    current = rdflib.Graph()
    for t in store.triples(TOPOLOGY_GRAPH):
        current.add(t)
    declared_subjects = {s for s, _, _ in declared}
    declared_edges = {(s, o) for s, p, o in declared if p == SHK.calls}
    keep = rdflib.Graph()
    for node in current.subjects(SHK.origin, Literal("discovered")):
        if node in declared_subjects or (node, RDF.type, SHK.ObservedCall) in current:
            continue
        for _, p, o in current.triples((node, None, None)):
            if p != SHK.calls:
                keep.add((node, p, o))
    nodes = declared_subjects | set(keep.subjects())
    for rec in current.subjects(RDF.type, SHK.ObservedCall):
        a, b = current.value(rec, SHK.caller), current.value(rec, SHK.callee)
        if a in nodes and b in nodes and (a, b) not in declared_edges:
            keep += current.triples((rec, None, None))
            keep.add((a, SHK.calls, b))
    return list(keep)


def _select(store: KnowledgeStore, sparql: str) -> SelectResult:
    result = store.query(SPARQL_PREFIXES + sparql)
    assert isinstance(result, SelectResult)
    return result


def edges(store: KnowledgeStore) -> list[tuple[str, str]]:
    """Return (caller name, callee name) for every shk:calls and shk:dependsOn edge, sorted."""
    rows = _select(
        store,
        f"""SELECT DISTINCT ?a ?b WHERE {{ GRAPH <{TOPOLOGY_GRAPH}> {{
            ?x shk:calls|shk:dependsOn ?y . ?x rdfs:label ?a . ?y rdfs:label ?b }} }}""",
    )
    return sorted((str(a), str(b)) for a, b in rows.rows)


def nodes(store: KnowledgeStore) -> dict[str, str]:
    """Return ``{name: kind}`` (kind = local name of the most specific node class)."""
    rows = _select(
        store,
        f"""SELECT ?name ?type WHERE {{ GRAPH <{TOPOLOGY_GRAPH}> {{
            ?n a ?type ; rdfs:label ?name }} }}""",
    )
    out: dict[str, str] = {}
    for name, rdf_type in rows.rows:
        if rdf_type not in NODE_CLASS_IRIS:
            continue
        kind = str(rdf_type).removeprefix(str(SHK))
        if kind != "Node" or str(name) not in out:
            out[str(name)] = kind
    return out


def node_iris(store: KnowledgeStore) -> dict[str, URIRef]:
    """Return ``{name: IRI}`` of the topology's nodes (a name two nodes share is left out)."""
    rows = _select(
        store,
        f"""SELECT DISTINCT ?n ?name ?type WHERE {{ GRAPH <{TOPOLOGY_GRAPH}> {{
            ?n a ?type ; rdfs:label ?name }} }}""",
    )
    found: dict[str, set[URIRef]] = {}
    for iri, name, rdf_type in rows.rows:
        if rdf_type in NODE_CLASS_IRIS and isinstance(iri, URIRef):
            found.setdefault(str(name), set()).add(iri)
    return {name: next(iter(iris)) for name, iris in found.items() if len(iris) == 1}
