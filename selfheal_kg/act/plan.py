"""The repair plan: open incidents as a DAG ordered by the topology.

When several incidents wait for repair at once, an incident whose target calls (directly or
through other nodes) the target of another incident waits for that one: the callee is repaired
and verified before its callers are touched, since restarting a caller of a broken dependency
only makes it fail again. Incidents with no path between their targets are independent and run
in parallel (up to the safety gate's concurrency). Two incidents whose targets reach each other
(a call cycle) are ordered by opening time, older first, so the plan is always acyclic.

The plan is recorded in the incidents graph::

    <incident> shk:hasPlanStep <planstep/{incident}> .
    <planstep/{incident}> a shk:PlanStep ; shk:planOrder 0 ; shk:target <node> ;
                          shk:waitsFor <incident/{other}> .
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx
from rdflib import RDF, XSD, Literal
from rdflib.term import Node

from selfheal_kg.kg.history import NodeIri, incident_iri, target_iri
from selfheal_kg.kg.namespaces import SHK, node_iri

Triple = tuple[Node, Node, Node]


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One incident's repair in the plan."""

    incident: str
    target: str
    opened: float


@dataclass(frozen=True, slots=True)
class Plan:
    """Incidents with the incidents each must wait for (``after``)."""

    items: tuple[PlanItem, ...]
    after: Mapping[str, frozenset[str]]

    def waits_for(self, incident: str) -> frozenset[str]:
        """Return the incidents that must finish before ``incident`` starts."""
        return self.after.get(incident, frozenset())

    def ready(self, finished: Iterable[str]) -> list[PlanItem]:
        """Return the unfinished items whose predecessors have all finished."""
        done = set(finished)
        return [i for i in self.items
                if i.incident not in done and self.waits_for(i.incident) <= done]

    def layers(self) -> list[list[str]]:
        """Return the incidents in waves: each wave may run in parallel after the previous."""
        out: list[list[str]] = []
        done: set[str] = set()
        while len(done) < len(self.items):
            wave = [i.incident for i in self.ready(done)]
            out.append(wave)
            done.update(wave)
        return out

    def order_of(self, incident: str) -> int:
        """Return the wave index of ``incident`` (0: runs first)."""
        for n, wave in enumerate(self.layers()):
            if incident in wave:
                return n
        raise KeyError(incident)


def build_plan(items: Iterable[PlanItem], edges: Iterable[tuple[str, str]]) -> Plan:
    """Order ``items`` by the call graph ``edges`` (caller, callee): callees first."""
    ordered = sorted(items, key=lambda i: (i.opened, i.incident))
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_edges_from(edges)
    after: dict[str, set[str]] = {i.incident: set() for i in ordered}
    for n, a in enumerate(ordered):
        for b in ordered[n + 1:]:
            a_calls_b = _reaches(graph, a.target, b.target)
            b_calls_a = _reaches(graph, b.target, a.target)
            if a_calls_b and b_calls_a:
                after[b.incident].add(a.incident)  # a cycle: the older incident goes first
            elif a_calls_b:
                after[a.incident].add(b.incident)
            elif b_calls_a:
                after[b.incident].add(a.incident)
    return Plan(tuple(ordered), {k: frozenset(v) for k, v in after.items()})


def _reaches(graph: nx.DiGraph, src: str, dst: str) -> bool:
    if src == dst or src not in graph or dst not in graph:
        return False
    return bool(nx.has_path(graph, src, dst))


def plan_step_triples(
    plan: Plan, incident: str, *, iri: NodeIri = target_iri
) -> list[Triple]:
    """Return the triples that record ``incident``'s place in the plan."""
    item = next(i for i in plan.items if i.incident == incident)
    ps = node_iri("planstep", incident)
    out: list[Triple] = [
        (incident_iri(incident), SHK.hasPlanStep, ps),
        (ps, RDF.type, SHK.PlanStep),
        (ps, SHK.planOrder, Literal(plan.order_of(incident), datatype=XSD.integer)),
        (ps, SHK.target, iri(item.target)),
    ]
    out += [(ps, SHK.waitsFor, incident_iri(o)) for o in sorted(plan.waits_for(incident))]
    return out
