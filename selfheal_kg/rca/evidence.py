"""What RCA ranks: live signals and down nodes as per-node anomalies, and their neighbourhood."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import networkx as nx

from selfheal_kg.model import Signal
from selfheal_kg.rca.anomaly import DOWN, Anomaly, calls_out
from selfheal_kg.rca.patterns import Patterns


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
            onsets=(*(prev.onsets if prev else ()), s.onset),
            deltas=(*(prev.deltas if prev else ()), s.value - s.baseline),
        )
    for node, since in down.items():
        prev = out.get(node)
        out[node] = Anomaly(
            node=node,
            score=1.0,
            onset=min(since, prev.onset) if prev else since,
            evidence=(*(prev.evidence if prev else ()), f"health:{node}"),
            kinds=(*(prev.kinds if prev else ()), DOWN),
            onsets=(*(prev.onsets if prev else ()), since),
            deltas=(*(prev.deltas if prev else ()), 0.0),
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
            if node in graph and any(calls_out(k) for k in a.kinds)
            for callee in graph.successors(node)
        }
        out |= set(graph.nodes) - suspects
    return out


def with_diagnoses(
    anomalies: Mapping[str, Anomaly], diagnosed: Iterable[tuple[str, str]], patterns: Patterns
) -> dict[str, Anomaly]:
    """Return ``anomalies`` with each diagnosed node's pattern symptoms in ``diagnosed``.

    ``diagnosed`` holds (node, pattern id) pairs a rule concluded; a pattern the knowledge
    graph does not describe adds nothing (its symptoms are unknown).
    """
    out = dict(anomalies)
    for node, pattern in diagnosed:
        a = out.get(node)
        symptoms = tuple(m for m, _ in patterns.get(pattern, ("", ()))[1])
        if a is not None and symptoms:
            out[node] = replace(a, diagnosed=tuple(dict.fromkeys((*a.diagnosed, *symptoms))))
    return out
