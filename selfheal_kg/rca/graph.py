"""An immutable snapshot of the dependency graph used for ranking.

Edges point from caller to callee (``a → b``: *a* calls or depends on *b*); faults propagate
against them, from a callee up to its callers. networkx holds the graph for building and
explaining paths; a scipy CSR matrix, built lazily once per snapshot, serves the numeric work
on large graphs (sub-matrix extraction, BFS).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cached_property

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

#: Name endings of nodes that record a call from the caller's side (X-Ray style).
PROXY_SUFFIXES = ("_remote", "_client")
#: Shortest host-label word that may name the service behind a proxy.
MIN_TOKEN = 4
_STEM = re.compile(r"[_@./:]")


class TopologySnapshot:
    """A caller → callee DiGraph at one topology version, with a cached CSR view."""

    def __init__(self, graph: nx.DiGraph, kinds: Mapping[str, str], version: int) -> None:
        self.graph = graph
        self.kinds = dict(kinds)
        self.version = version

    @classmethod
    def from_edges(
        cls,
        edges: Iterable[tuple[str, str]],
        kinds: Mapping[str, str] | None = None,
        version: int = 0,
        nodes: Iterable[str] = (),
    ) -> TopologySnapshot:
        """Build a snapshot from caller → callee pairs (self-loops are dropped)."""
        g = nx.DiGraph()
        g.add_nodes_from(nodes)
        g.add_edges_from((a, b) for a, b in edges if a != b)
        kinds = dict(kinds or {})
        g.add_nodes_from(kinds)
        return cls(g, kinds, version)

    def with_nodes(self, nodes: Iterable[str]) -> TopologySnapshot:
        """Return this snapshot, or a copy with the unknown ``nodes`` added (partial topology)."""
        missing = [n for n in nodes if n not in self.graph]
        if not missing:
            return self
        g = self.graph.copy()
        g.add_nodes_from(missing)
        return TopologySnapshot(g, self.kinds, self.version)

    @cached_property
    def names(self) -> list[str]:
        """Return the node names in CSR row order."""
        return list(self.graph.nodes)

    @cached_property
    def index(self) -> dict[str, int]:
        """Return the CSR row of each node."""
        return {n: i for i, n in enumerate(self.names)}

    @cached_property
    def csr(self) -> sp.csr_matrix:
        """Return the adjacency matrix (row = caller, column = callee, 1.0 per edge)."""
        idx = self.index
        n = len(idx)
        rows = np.fromiter((idx[a] for a, _ in self.graph.edges), dtype=np.int64)
        cols = np.fromiter((idx[b] for _, b in self.graph.edges), dtype=np.int64)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))

    @cached_property
    def csc(self) -> sp.csc_matrix:
        """Return the adjacency matrix in CSC form (fast column = callers-of lookups)."""
        return self.csr.tocsc()

    def callees(self, rows: np.ndarray) -> np.ndarray:
        """Return the rows of every callee of the nodes at ``rows`` (unique, sorted)."""
        return np.asarray(np.unique(self.csr[rows].indices))

    def callers(self, row: int) -> np.ndarray:
        """Return the rows of the callers of the node at ``row``."""
        csc = self.csc
        return np.asarray(csc.indices[csc.indptr[row] : csc.indptr[row + 1]])

    def descendants(self, node: str) -> set[str]:
        """Return ``node`` and every node it (transitively) depends on (a BFS on the CSR)."""
        if node not in self.index:
            return {node}
        order = csgraph.breadth_first_order(
            self.csr, self.index[node], directed=True, return_predecessors=False
        )
        names = self.names
        return {names[i] for i in order.tolist()}

    def merged(self, mapping: Mapping[str, str]) -> TopologySnapshot:
        """Return a copy with each ``mapping`` key folded into its value (edges re-pointed).

        Edges that become self-loops are dropped; a folded node's kind is forgotten.
        """
        if not mapping:
            return self
        g = nx.DiGraph()
        g.add_nodes_from(mapping.get(n, n) for n in self.graph.nodes)
        g.add_edges_from(
            (mapping.get(a, a), mapping.get(b, b))
            for a, b in self.graph.edges
            if mapping.get(a, a) != mapping.get(b, b)
        )
        kinds = {n: k for n, k in self.kinds.items() if n not in mapping}
        return TopologySnapshot(g, kinds, self.version)


def is_proxy(name: str, suffixes: tuple[str, ...] = PROXY_SUFFIXES) -> bool:
    """Whether ``name`` is a client-side view of a call (``…_remote``, ``…_client``)."""
    return name.endswith(suffixes)


def proxy_targets(
    snap: TopologySnapshot, suffixes: tuple[str, ...] = PROXY_SUFFIXES
) -> dict[str, str]:
    """Map each client-side proxy node onto the service it stands for, where that is clear.

    A tracer that cannot see the callee records the call as a node of its own
    (``PetSearch_client``, ``servi-searc.….elb.amazonaws.com_remote``): its latency and
    availability are the callee's as its callers see them. A proxy with exactly one
    non-proxy callee stands for that callee. A proxy leaf stands for the one non-proxy node
    whose stem (its name up to the first ``_ @ . / :``) contains a word (≥ MIN_TOKEN
    letters) of the proxy's first host label that no other proxy label has: load balancers
    are usually named after what they front. No match, or several, leaves the proxy as is.
    """
    services = [n for n in snap.names if not is_proxy(n, suffixes)]
    stems = {n: _STEM.split(n, maxsplit=1)[0].lower() for n in services}
    out: dict[str, str] = {}
    leaves = []
    for node in snap.names:
        if not is_proxy(node, suffixes):
            continue
        callees = [c for c in snap.graph.successors(node) if not is_proxy(c, suffixes)]
        if len(callees) == 1:
            out[node] = callees[0]
        elif not callees:
            leaves.append(node)
    labels = {n: _host_label(n, suffixes) for n in leaves}
    # A word shared by several host labels (``servi`` of every ``servi-xxxxx`` balancer)
    # names the naming scheme, not a service.
    shared = Counter(w for label in set(labels.values()) for w in set(_words(label)))
    for node, label in labels.items():
        words = [w for w in _words(label) if shared[w] == 1]
        hits = {s for s in services for w in words if w in stems[s]}
        if len(hits) == 1:
            out[node] = hits.pop()
    return out


def _host_label(node: str, suffixes: tuple[str, ...]) -> str:
    """Return a proxy's first host label, lower-cased (``servi-searc`` of ``servi-searc.…``)."""
    stem = next(node[: -len(s)] for s in suffixes if node.endswith(s))
    return stem.split("://", 1)[-1].split(".", 1)[0].lower()


def _words(label: str) -> list[str]:
    """Return the words of at least MIN_TOKEN letters in ``label``."""
    return [w for w in re.split(r"[^a-z]+", label) if len(w) >= MIN_TOKEN]
