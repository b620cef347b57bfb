"""The KnowledgeStore port and its two adapters: embedded Oxigraph and rdflib Memory.

Both speak rdflib terms at the boundary, see the union of the named graphs as the default
graph (``GRAPH <...>`` still selects one), refuse blank nodes on write (skolemise first: data
must move unchanged to a remote SPARQL store) and serialise writes through one lock.
SPARQL 1.1: https://www.w3.org/TR/sparql11-query/
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pyoxigraph as ox
import rdflib
from rdflib import BNode, Literal, URIRef
from rdflib.query import Result
from rdflib.term import Identifier, Node

from selfheal_kg.errors import QueryError

Triple = tuple[Node, Node, Node]
Term = Identifier  # URIRef | Literal | BNode
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
PyValue = str | int | float | bool | Decimal | None


@dataclass(frozen=True, slots=True)
class SelectResult:
    """Rows of a SELECT query; ``None`` where a variable is unbound."""

    vars: tuple[str, ...]
    rows: list[tuple[Term | None, ...]]

    def dicts(self) -> list[dict[str, PyValue]]:
        """Return each row as ``{var: python value}`` (IRIs as strings, literals converted)."""
        return [{v: to_python(t) for v, t in zip(self.vars, row, strict=True)} for row in self.rows]


QueryResult = SelectResult | bool | list[Triple]


def to_python(term: Term | None) -> PyValue:
    """Convert an RDF term to a plain python value (IRIs and blank nodes to strings)."""
    if term is None:
        return None
    if isinstance(term, Literal):
        value = term.toPython()
        if isinstance(value, str | int | float | bool | Decimal):
            return value
        return str(term)
    return str(term)


class KnowledgeStore(Protocol):
    """A quad store holding the named graphs of selfheal-kg."""

    def query(self, sparql: str) -> QueryResult:
        """Run a SPARQL query over the union of the named graphs."""
        ...

    def update(self, sparql: str) -> None:
        """Run a SPARQL update."""
        ...

    def add(self, graph: URIRef, triples: Iterable[Triple]) -> None:
        """Add triples to ``graph`` in one batch."""
        ...

    def replace_graph(self, graph: URIRef, triples: Iterable[Triple]) -> None:
        """Replace the content of ``graph`` atomically."""
        ...

    def triples(self, graph: URIRef) -> Iterator[Triple]:
        """Iterate over the triples of ``graph``."""
        ...

    def to_rdflib(self, graphs: Sequence[URIRef]) -> rdflib.Graph:
        """Copy the union of ``graphs`` into an rdflib Memory graph."""
        ...

    def clear(self, graph: URIRef) -> None:
        """Remove every triple of ``graph``."""
        ...

    def count(self, graph: URIRef) -> int:
        """Return the number of triples in ``graph``."""
        ...


def check_triples(triples: Iterable[Triple]) -> list[Triple]:
    """Return ``triples`` as a list; raise ``ValueError`` naming the first one with a blank node."""
    out = list(triples)
    for t in out:
        for term in t:
            if isinstance(term, BNode):
                raise ValueError(f"blank node refused in triple {t!r}: mint an IRI (node_iri)")
            if not isinstance(term, URIRef | Literal):
                raise ValueError(f"unsupported term {term!r} in triple {t!r}")
    return out


def open_store(path: Path | None) -> KnowledgeStore:
    """Open the default store: Oxigraph on disk at ``path``, or in memory when ``None``."""
    return OxigraphStore(path)


# ----------------------------------------------------------------------------- Oxigraph


def _ox_term(term: Node) -> ox.NamedNode | ox.Literal:
    if isinstance(term, URIRef):
        return ox.NamedNode(str(term))
    if isinstance(term, Literal):
        if term.language:
            return ox.Literal(str(term), language=term.language)
        if term.datatype is not None:
            return ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype)))
        return ox.Literal(str(term))
    raise ValueError(f"unsupported term {term!r}")


def _rdf_term(term: Any) -> Term:
    if isinstance(term, ox.NamedNode):
        return URIRef(term.value)
    if isinstance(term, ox.BlankNode):
        return BNode(term.value)
    if isinstance(term, ox.Literal):
        if term.language:
            return Literal(term.value, lang=term.language)
        if term.datatype.value == _XSD_STRING:
            # rdflib tells "x" from "x"^^xsd:string; RDF 1.1 does not: keep rdflib's plain form
            return Literal(term.value)
        return Literal(term.value, datatype=URIRef(term.datatype.value))
    raise QueryError(f"unsupported result term {term!r} (RDF-star is not used here)")


def _rdf_triple(t: Any) -> Triple:
    return (_rdf_term(t.subject), _rdf_term(t.predicate), _rdf_term(t.object))


class OxigraphStore:
    """The embedded store: pyoxigraph, in memory or persistent (RocksDB) at ``path``."""

    def __init__(self, path: Path | None = None) -> None:
        self._store = ox.Store(str(path)) if path is not None else ox.Store()
        self._write = threading.Lock()

    def query(self, sparql: str) -> QueryResult:
        """Run a query; SELECT → ``SelectResult``, ASK → bool, CONSTRUCT/DESCRIBE → triples."""
        try:
            result = self._store.query(sparql, use_default_graph_as_union=True)
            if isinstance(result, ox.QueryBoolean):
                return bool(result)
            if isinstance(result, ox.QueryTriples):
                return [_rdf_triple(t) for t in result]
            names = tuple(v.value for v in result.variables)
            rows = [
                tuple(None if s[i] is None else _rdf_term(s[i]) for i in range(len(names)))
                for s in result
            ]
        except (SyntaxError, ValueError, OSError) as exc:
            if isinstance(exc, QueryError):
                raise
            raise QueryError(str(exc)) from exc
        return SelectResult(names, rows)

    def update(self, sparql: str) -> None:
        """Run a SPARQL update (transactional in Oxigraph)."""
        with self._write:
            try:
                self._store.update(sparql)
            except (SyntaxError, ValueError, OSError) as exc:
                raise QueryError(str(exc)) from exc

    def add(self, graph: URIRef, triples: Iterable[Triple]) -> None:
        """Add triples to ``graph`` in one transaction."""
        g = ox.NamedNode(str(graph))
        quads = [
            ox.Quad(_ox_term(s), _ox_term(p), _ox_term(o), g)  # type: ignore[arg-type]
            for s, p, o in check_triples(triples)
        ]
        with self._write:
            self._store.extend(quads)

    def replace_graph(self, graph: URIRef, triples: Iterable[Triple]) -> None:
        """Drop and refill ``graph`` in one SPARQL update (one transaction in Oxigraph)."""
        checked = check_triples(triples)
        g = f"<{graph}>"
        body = "\n".join(" ".join(str(_ox_term(x)) for x in t) + " ." for t in checked)
        with self._write:
            self._store.update(
                f"DROP SILENT GRAPH {g} ;\nINSERT DATA {{ GRAPH {g} {{\n{body}\n}} }}"
            )

    def triples(self, graph: URIRef) -> Iterator[Triple]:
        """Iterate over the triples of ``graph``."""
        for q in self._store.quads_for_pattern(None, None, None, ox.NamedNode(str(graph))):
            yield _rdf_triple(q)

    def to_rdflib(self, graphs: Sequence[URIRef]) -> rdflib.Graph:
        """Copy the union of ``graphs`` into an rdflib Memory graph."""
        out = rdflib.Graph()
        for graph in graphs:
            for t in self.triples(graph):
                out.add(t)
        return out

    def clear(self, graph: URIRef) -> None:
        """Remove every triple of ``graph``."""
        with self._write:
            self._store.update(f"DROP SILENT GRAPH <{graph}>")

    def count(self, graph: URIRef) -> int:
        """Return the number of triples in ``graph``."""
        return sum(
            1 for _ in self._store.quads_for_pattern(None, None, None, ox.NamedNode(str(graph)))
        )


# ----------------------------------------------------------------------------- rdflib


class _Dataset(rdflib.Dataset):
    """rdflib's Dataset without the deprecation warning its own SPARQL engine triggers.

    rdflib 7.6 evaluates every query through ``Dataset.default_context``, a property it has
    itself deprecated; with warnings as errors each query would fail.
    """

    @property
    def default_context(self) -> rdflib.Graph:
        return self.default_graph  # type: ignore[no-any-return]

    @default_context.setter
    def default_context(self, value: rdflib.Graph) -> None:
        self.default_graph = value


class RdflibStore:
    """rdflib Dataset in memory; one lock for readers and writers (rdflib is not thread-safe)."""

    def __init__(self) -> None:
        self._ds = _Dataset(default_union=True)
        self._lock = threading.RLock()

    def query(self, sparql: str) -> QueryResult:
        """Run a query; SELECT → ``SelectResult``, ASK → bool, CONSTRUCT/DESCRIBE → triples."""
        with self._lock:
            try:
                result = self._ds.query(sparql)
                return _from_rdflib_result(result)
            except QueryError:
                raise
            except Exception as exc:  # rdflib raises pyparsing and assorted errors on bad SPARQL
                raise QueryError(str(exc)) from exc

    def update(self, sparql: str) -> None:
        """Run a SPARQL update."""
        with self._lock:
            try:
                self._ds.update(sparql)
            except Exception as exc:  # as in query(): rdflib's parser errors have no common base
                raise QueryError(str(exc)) from exc

    def add(self, graph: URIRef, triples: Iterable[Triple]) -> None:
        """Add triples to ``graph``."""
        checked = check_triples(triples)
        with self._lock:
            g = self._ds.graph(graph)
            for t in checked:
                g.add(t)

    def replace_graph(self, graph: URIRef, triples: Iterable[Triple]) -> None:
        """Replace ``graph`` under the lock, so no reader sees it half-written."""
        checked = check_triples(triples)
        with self._lock:
            g = self._ds.graph(graph)
            g.remove((None, None, None))
            for t in checked:
                g.add(t)

    def triples(self, graph: URIRef) -> Iterator[Triple]:
        """Iterate over a snapshot of the triples of ``graph``."""
        with self._lock:
            snapshot = list(self._ds.graph(graph).triples((None, None, None)))
        yield from snapshot

    def to_rdflib(self, graphs: Sequence[URIRef]) -> rdflib.Graph:
        """Copy the union of ``graphs`` into a new rdflib Memory graph."""
        out = rdflib.Graph()
        for graph in graphs:
            for t in self.triples(graph):
                out.add(t)
        return out

    def clear(self, graph: URIRef) -> None:
        """Remove every triple of ``graph``."""
        with self._lock:
            self._ds.graph(graph).remove((None, None, None))

    def count(self, graph: URIRef) -> int:
        """Return the number of triples in ``graph``."""
        with self._lock:
            return len(self._ds.graph(graph))


def _from_rdflib_result(result: Result) -> QueryResult:
    if result.type == "ASK":
        return bool(result.askAnswer)
    if result.type in ("CONSTRUCT", "DESCRIBE"):
        assert result.graph is not None
        return [(s, p, o) for s, p, o in result.graph]
    names = tuple(str(v) for v in (result.vars or ()))
    rows = [tuple(row) for row in result]  # type: ignore[arg-type]
    return SelectResult(names, rows)  # type: ignore[arg-type]
