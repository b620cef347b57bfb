"""Group alerting nodes by topology: a root and the transitive callers that depend on it.

Edges of the dependency graph point from caller to callee, so a fault propagates against them.
An alerting node that reaches (transitively, through any nodes) no other alerting node is a
*root*; every other alerting node joins the group of a root it depends on. A node that depends
on several roots joins the one whose alerts started first (the likelier cause), ties by name.
Nodes on a dependency cycle that all alert form one strongly connected block: its
alphabetically first node stands for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import networkx as nx


def group_id(root: str) -> str:
    """Return the stable id of the group rooted at ``root``."""
    return "grp-" + hashlib.sha256(root.encode()).hexdigest()[:16]


def roots_of(started: Mapping[str, float], graph: nx.DiGraph) -> dict[str, str]:
    """Map every alerting node to the root of its group.

    Args:
        started: alerting node → earliest start of its alerts.
        graph: caller → callee dependency graph (nodes it lacks stand alone).

    Returns:
        ``{node: root}``; a root maps to itself.
    """
    reach = _reach_graph(started, graph)
    blocks = nx.condensation(reach)
    leader = {b: min(blocks.nodes[b]["members"]) for b in blocks.nodes}
    out: dict[str, str] = {}
    for block in blocks.nodes:
        sinks = [d for d in nx.descendants(blocks, block) | {block} if blocks.out_degree(d) == 0]
        best = min(sinks, key=lambda b: (_start(blocks, b, started), leader[b]))
        for node in blocks.nodes[block]["members"]:
            out[node] = leader[best]
    return out


def _reach_graph(started: Mapping[str, float], graph: nx.DiGraph) -> nx.DiGraph:
    """Return a graph on the alerting nodes with ``a → b`` when ``a`` transitively depends on b."""
    reach = nx.DiGraph()
    reach.add_nodes_from(started)
    alerting = set(started)
    for node in alerting:
        if node in graph:
            reach.add_edges_from((node, d) for d in nx.descendants(graph, node) & alerting)
    return reach


def _start(blocks: nx.DiGraph, block: int, started: Mapping[str, float]) -> float:
    return min(started[n] for n in blocks.nodes[block]["members"])


def callers_inhibited(roots: Mapping[str, str]) -> dict[str, str]:
    """Return ``{node: root}`` for the non-root nodes, which their root's alerts inhibit."""
    return {node: root for node, root in roots.items() if node != root}
