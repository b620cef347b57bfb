"""An immutable snapshot of the dependency graph used for ranking.

Edges point from caller to callee (``a → b``: *a* calls or depends on *b*); faults propagate
against them, from a callee up to its callers. networkx holds the graph for building and
explaining paths; a scipy CSR matrix, built lazily once per snapshot, serves the numeric work
on large graphs (sub-matrix extraction, BFS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph


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
