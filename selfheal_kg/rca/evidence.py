"""What RCA ranks: live signals and down nodes as per-node anomalies, and their neighbourhood."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from selfheal_kg.model import Signal
from selfheal_kg.rca.rank import DOWN, Anomaly


def anomalies_from(signals: Iterable[Signal], down: Mapping[str, float]) -> dict[str, Anomaly]:
    """Merge signals per node (max score, earliest onset); a down node scores 1 from last seen."""
    out: dict[str, Anomaly] = {}
    for s in signals:
        prev = out.get(s.node)
        out[s.node] = Anomaly(
            node=s.node,
            score=max(s.score, prev.score if prev else 0.0),
            onset=min(s.onset, prev.onset if prev else s.onset),
            evidence=(*(prev.evidence if prev else ()), s.id),
            kinds=(*(prev.kinds if prev else ()), s.metric),
        )
    for node, since in down.items():
        prev = out.get(node)
        out[node] = Anomaly(
            node=node,
            score=1.0,
            onset=min(since, prev.onset) if prev else since,
            evidence=(*(prev.evidence if prev else ()), f"health:{node}"),
            kinds=(*(prev.kinds if prev else ()), DOWN),
        )
    return out


def near(graph: nx.DiGraph, node: str) -> set[str]:
    """Return the nodes a fault at or below ``node`` could involve: its dependencies and callers."""
    if node not in graph:
        return set()
    return set(nx.descendants(graph, node)) | set(nx.ancestors(graph, node))


def component(graph: nx.DiGraph, seeds: Iterable[str], anomalous: set[str]) -> set[str]:
    """Return the anomalous nodes connected to ``seeds`` through anomalous nodes (undirected)."""
    seen = set(seeds)
    frontier = [n for n in seen if n in graph]
    while frontier:
        node = frontier.pop()
        for nxt in (*graph.successors(node), *graph.predecessors(node)):
            if nxt in anomalous and nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def observed_nodes(
    reporting: Iterable[str],
    down: Iterable[str],
    graph: nx.DiGraph,
    anomalies: Mapping[str, Anomaly] | None = None,
) -> set[str]:
    """Return the nodes RCA must not infer as hidden roots.

    Those that report; the dependencies of a node that is down (a dead node makes no calls, so
    nothing can be inferred about what it calls); and, when ``anomalies`` are given, every node
    that no anomalous caller's outgoing calls (client-side evidence) point at: a caller slow in
    its own handler, or leaking memory, says nothing about what it calls.
    """
    out = set(reporting)
    for node in down:
        if node in graph:
            out |= set(graph.successors(node))
    if anomalies is not None:
        suspects = {
            callee
            for node, a in anomalies.items()
            if node in graph and any(".client." in k for k in a.kinds)
            for callee in graph.successors(node)
        }
        out |= set(graph.nodes) - suspects
    return out
