"""Discovered topology: call edges seen in traces, written beside the declared topology.

Declared wins: a discovered edge or node never changes what a topology file says; each
refused change comes back as a ``Conflict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import rdflib
from rdflib import RDF, RDFS, Literal, URIRef

from selfheal_kg.kg.namespaces import SHK, SPARQL_PREFIXES, TOPOLOGY_GRAPH, node_iri
from selfheal_kg.kg.node_classes import NODE_CLASSES
from selfheal_kg.kg.shacl import show_term, validate
from selfheal_kg.kg.store import KnowledgeStore, SelectResult, Triple

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


def _select(store: KnowledgeStore, sparql: str) -> SelectResult:
    result = store.query(SPARQL_PREFIXES + sparql)
    assert isinstance(result, SelectResult)
    return result


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
