"""The topology graph: declared Turtle files, discovered call edges, and read helpers.

Declared wins: a discovered edge or node never changes what a topology file says; each
refused change comes back as a ``Conflict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import rdflib
from rdflib import RDF, RDFS, BNode, Literal, URIRef
from rdflib.plugins.parsers.notation3 import BadSyntax

from selfheal_kg.errors import TurtleSyntaxError
from selfheal_kg.kg.namespaces import SHK, SPARQL_PREFIXES, TOPOLOGY_GRAPH, node_iri
from selfheal_kg.kg.shacl import show_term, validate
from selfheal_kg.kg.store import KnowledgeStore, SelectResult, Triple

NODE_CLASSES = ("Service", "ServiceInstance", "Host", "Database", "Queue", "ExternalService")
_NODE_CLASS_IRIS = frozenset(SHK[c] for c in (*NODE_CLASSES, "Node"))
_ANY = URIRef("urn:selfheal-kg:any")  # object wildcard in a delete: "whatever value is there"


@dataclass(frozen=True, slots=True)
class Conflict:
    """A discovered edge that was not written because it would contradict declared topology."""

    caller: str
    callee: str
    reason: str
    kind: str = "declared"  # "declared", "ambiguous" or "shacl"


class EdgeLike(Protocol):
    """A discovered edge as the span pairing produces it (``callee_kind`` is optional)."""

    @property
    def caller(self) -> str: ...

    @property
    def callee(self) -> str: ...


FoundEdge = tuple[str, str] | EdgeLike


def _normalise(found: Iterable[FoundEdge]) -> dict[tuple[str, str], str]:
    """Return {(caller, callee): callee class local name}, dropping empty names and self-calls."""
    out: dict[tuple[str, str], str] = {}
    # an instance needs its service (shk:instanceOf), which a bare edge cannot tell
    by_lower = {c.lower(): c for c in NODE_CLASSES if c != "ServiceInstance"}
    for e in found:
        if isinstance(e, tuple):
            caller, callee, kind = e[0], e[1], "Service"
        else:
            caller, callee = e.caller, e.callee
            kind = str(getattr(e, "callee_kind", "") or "Service")
        if caller and callee and caller != callee:
            out[(str(caller), str(callee))] = by_lower.get(kind.lower().replace("_", ""), "Service")
    return out


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
        if not types & _NODE_CLASS_IRIS:
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
        if rdf_type not in _NODE_CLASS_IRIS:
            continue
        kind = str(rdf_type).removeprefix(str(SHK))
        if kind != "Node" or str(name) not in out:
            out[str(name)] = kind
    return out


def _xsd_time(t: float) -> Literal:
    return Literal(datetime.fromtimestamp(t, UTC))


def _resolve(store: KnowledgeStore, names: set[str]) -> dict[str, list[tuple[URIRef, str]]]:
    """Map each known name to its nodes and their origins."""
    if not names:
        return {}
    values = " ".join(Literal(n).n3() for n in sorted(names))
    rows = _select(
        store,
        f"""SELECT ?name ?n ?origin WHERE {{ VALUES ?name {{ {values} }}
            GRAPH <{TOPOLOGY_GRAPH}> {{
                ?n rdfs:label ?name . OPTIONAL {{ ?n shk:origin ?origin }} }} }}""",
    )
    out: dict[str, list[tuple[URIRef, str]]] = {}
    for name, n, origin in rows.rows:
        out.setdefault(str(name), []).append((URIRef(str(n)), str(origin or "declared")))
    return out


def _edge_state(
    store: KnowledgeStore, a: URIRef, b: URIRef, rec: URIRef
) -> tuple[bool, Literal | None]:
    """Return (edge exists, firstSeen of its ObservedCall record or None when declared/new)."""
    rows = _select(
        store,
        f"""SELECT ?e ?first WHERE {{ GRAPH <{TOPOLOGY_GRAPH}> {{
            OPTIONAL {{ <{a}> shk:calls ?e . FILTER(?e = <{b}>) }}
            OPTIONAL {{ <{rec}> shk:firstSeen ?first }} }} }}""",
    )
    exists = any(r[0] is not None for r in rows.rows)
    first = next((r[1] for r in rows.rows if r[1] is not None), None)
    return exists, first if isinstance(first, Literal) else None


@dataclass
class _Plan:
    """The writes of one batch, per node and per edge, so a refused edge can be left out."""

    node_deletes: dict[URIRef, list[Triple]] = field(default_factory=dict)
    node_inserts: dict[URIRef, list[Triple]] = field(default_factory=dict)
    # (caller, callee) → (caller node, callee node, record, triples of the edge)
    edges: dict[tuple[str, str], tuple[URIRef, URIRef, URIRef, list[Triple]]] = field(
        default_factory=dict
    )

    def writes(self) -> tuple[list[Triple], list[Triple]]:
        """Return (deletes, inserts) of the edges still planned and of the nodes they touch."""
        deletes: list[Triple] = []
        inserts: list[Triple] = []
        touched: set[URIRef] = set()
        for a, b, rec, triples in self.edges.values():
            touched |= {a, b}
            deletes.append((rec, SHK.lastSeen, _ANY))
            inserts += triples
        for n in sorted(touched):
            deletes += self.node_deletes.get(n, [])
            inserts += self.node_inserts.get(n, [])
        return deletes, inserts


def add_discovered_edges(
    store: KnowledgeStore,
    found: Iterable[FoundEdge],
    now: float,
    *,
    shapes: rdflib.Graph | None = None,
    ontology: rdflib.Graph | None = None,
) -> list[Conflict]:
    """Record edges seen in traces at time ``now``.

    Args:
        found: (caller name, callee name) pairs, or objects with ``caller``, ``callee`` and
            optionally ``callee_kind`` (e.g. ``"database"``).
        shapes: when given, the touched nodes are SHACL-validated (focus nodes only) as they
            would be after the write, and edges whose nodes violate a shape are not written.
        ontology: mixed in for the validation (rdfs:subClassOf of the node classes).

    Unknown names become discovered nodes (``shk:Service`` unless the callee kind says
    otherwise); known ones keep their declared description. Returns the edges left alone:
    declared already (kind "declared"), naming an ambiguous node ("ambiguous"), or refused
    by SHACL ("shacl").
    """
    kinds = _normalise(found)
    known = _resolve(store, {n for p in kinds for n in p})
    seen = _xsd_time(now)
    plan = _Plan()
    conflicts: list[Conflict] = []
    for caller, callee in sorted(kinds):
        a, b = (
            _endpoint(name, kind, known.setdefault(name, []), seen=seen, plan=plan)
            for name, kind in ((caller, "Service"), (callee, kinds[(caller, callee)]))
        )
        if a is None or b is None:
            reason = "name matches several declared nodes"
            conflicts.append(Conflict(caller, callee, reason, "ambiguous"))
            continue
        rec = node_iri("call", caller, callee)
        exists, first = _edge_state(store, a, b, rec)
        if exists and first is None:
            conflicts.append(Conflict(caller, callee, "edge is declared; declared edge kept"))
            continue
        plan.edges[(caller, callee)] = (a, b, rec, _call_record(rec, a, b, first or seen, seen))
    if shapes is not None and plan.edges:
        conflicts += _refuse_invalid(store, plan, shapes, ontology)
    _write(store, *plan.writes())
    return conflicts


def _refuse_invalid(
    store: KnowledgeStore, plan: _Plan, shapes: rdflib.Graph, ontology: rdflib.Graph | None
) -> list[Conflict]:
    """Validate the planned state of the touched nodes; drop the edges whose nodes violate."""
    deletes, inserts = plan.writes()
    data = rdflib.Graph()
    for t in store.triples(TOPOLOGY_GRAPH):
        data.add(t)
    for s, p, o in deletes:
        data.remove((s, p, None if o is _ANY else o))
    for t in inserts:
        data.add(t)
    focus = sorted({n for a, b, rec, _ in plan.edges.values() for n in (a, b, rec)})
    violations = validate(data, shapes, focus, ontology=ontology)
    bad: dict[str, str] = {}
    for v in violations:
        bad.setdefault(v.focus, str(v))
    refused: list[Conflict] = []
    for pair, (a, b, rec, _) in list(plan.edges.items()):
        why = [bad[k] for k in (show_term(a), show_term(b), show_term(rec)) if k in bad]
        if why:
            del plan.edges[pair]
            refused.append(Conflict(*pair, "refused by SHACL: " + "; ".join(why), "shacl"))
    return refused


def _endpoint(
    name: str, kind: str, matches: list[tuple[URIRef, str]], *, seen: Literal, plan: _Plan
) -> URIRef | None:
    """Pick the node for ``name``, creating or refreshing a discovered one; None when ambiguous."""
    distinct = {iri for iri, _ in matches}
    if len(distinct) > 1:
        return None
    if distinct:
        iri, origin = matches[0]
        if origin == "discovered" and iri not in plan.node_inserts:
            plan.node_deletes[iri] = [(iri, SHK.lastSeen, _ANY)]
            plan.node_inserts[iri] = [(iri, SHK.lastSeen, seen)]
        return iri
    iri = node_iri(kind.lower(), name)
    inserts: list[Triple] = [(iri, SHK.serviceName, Literal(name))] if kind == "Service" else []
    inserts += [
        (iri, RDF.type, SHK[kind]),
        (iri, RDFS.label, Literal(name)),
        (iri, SHK.origin, Literal("discovered")),
        (iri, SHK.firstSeen, seen),
        (iri, SHK.lastSeen, seen),
    ]
    plan.node_inserts[iri] = inserts
    matches.append((iri, "discovered"))  # later pairs in this batch reuse the new node
    return iri


def _call_record(rec: URIRef, a: URIRef, b: URIRef, first: Literal, last: Literal) -> list[Triple]:
    return [
        (a, SHK.calls, b),
        (rec, RDF.type, SHK.ObservedCall),
        (rec, SHK.caller, a),
        (rec, SHK.callee, b),
        (rec, SHK.origin, Literal("discovered")),
        (rec, SHK.firstSeen, first),
        (rec, SHK.lastSeen, last),
    ]


def _write(store: KnowledgeStore, deletes: list[Triple], inserts: list[Triple]) -> None:
    """Apply the deletes (object ``_ANY`` = any value) then the inserts in one update."""
    g = f"<{TOPOLOGY_GRAPH}>"
    parts: list[str] = []
    for i, (s, p, o) in enumerate(deletes):
        obj = f"?o{i}" if o is _ANY else o.n3()
        parts.append(f"DELETE WHERE {{ GRAPH {g} {{ {s.n3()} {p.n3()} {obj} }} }}")
    if inserts:
        body = " .\n".join(f"{s.n3()} {p.n3()} {o.n3()}" for s, p, o in set(inserts))
        parts.append(f"INSERT DATA {{ GRAPH {g} {{ {body} }} }}")
    if parts:
        store.update(" ;\n".join(parts))


class ShapesSource(Protocol):
    """Where the current shapes and ontology are read (``KnowledgeLoader`` is one)."""

    @property
    def shapes(self) -> rdflib.Graph: ...

    @property
    def ontology(self) -> rdflib.Graph: ...


class DiscoverySync:
    """Writes span-discovered edges into the topology graph, SHACL-checked, and reports on it.

    Args:
        store: the knowledge store.
        source: current shapes and ontology (re-read on every sync, so reloads apply).
        max_conflicts: conflicts kept for ``health``.
    """

    def __init__(self, store: KnowledgeStore, source: ShapesSource, max_conflicts: int = 50):
        self._store = store
        self._source = source
        self._max = max_conflicts
        self.conflicts: list[Conflict] = []
        self.refused = 0
        self.synced_at: float | None = None

    def sync(self, found: Iterable[FoundEdge], now: float) -> list[Conflict]:
        """Write ``found`` as of ``now``; keep and return its conflicts (declared wins)."""
        conflicts = add_discovered_edges(
            self._store, found, now, shapes=self._source.shapes, ontology=self._source.ontology
        )
        self.refused += sum(c.kind == "shacl" for c in conflicts)
        self.conflicts = conflicts[: self._max]
        self.synced_at = now
        return conflicts

    def health(self) -> dict[str, object]:
        """Return the latest sync's conflicts and the SHACL refusals so far, for /healthz."""
        return {
            "synced_at": self.synced_at,
            "refused_by_shacl": self.refused,
            "conflicts": [
                {"caller": c.caller, "callee": c.callee, "kind": c.kind, "reason": c.reason}
                for c in self.conflicts
            ],
        }
