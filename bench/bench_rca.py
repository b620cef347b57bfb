"""Ranking latency on generated graphs of 100 to 100k nodes, beside a BFS baseline.

Usage: ``python bench/bench_rca.py [--sizes 100,1000,10000,100000]``. Each graph is a random
DAG (every node calls up to 3 nodes with a higher id); a fault is injected at one node and
its callers up to 4 levels are marked anomalous. Prints build time (snapshot + CSR), the
ranking time of :func:`rank`, the BFS baseline time (scipy csgraph from the target) and
whether the injected node ranked first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse import csgraph

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.rank import Anomaly, rank


def generate(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Return the edges of a random caller → callee DAG."""
    src = np.repeat(np.arange(n - 1), 3)
    dst = src + 1 + rng.geometric(0.05, src.size)
    keep = dst < n
    return [(f"n{a}", f"n{b}") for a, b in zip(src[keep].tolist(), dst[keep].tolist(),
                                                strict=True)]


def inject(snap: TopologySnapshot, rng: np.random.Generator) -> tuple[str, dict[str, Anomaly]]:
    """Pick a fault node with callers; mark it and its callers up to depth 4 anomalous."""
    g = snap.graph
    root = max(rng.choice(list(g.nodes), 50), key=g.in_degree)
    depth = nx.single_source_shortest_path_length(g.reverse(copy=False), root, cutoff=4)
    anomalies = {v: Anomaly(v, 1.0 - 0.1 * d, 100.0 + 10 * d, (f"{v}/latency",), ("latency",))
                 for v, d in depth.items()}
    return str(root), anomalies


def main(argv: list[str] | None = None) -> int:
    """Print one line per size; return 0."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(42)
    print(f"{'nodes':>7} {'edges':>7} {'anom':>5} | {'build s':>8} {'rank ms':>8} {'bfs ms':>7}"
          " | top1")
    for n in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        snap = TopologySnapshot.from_edges(generate(n, rng), nodes=[f"n{i}" for i in range(n)])
        _ = snap.csr
        build = time.perf_counter() - t0
        root, anomalies = inject(snap, rng)
        target = min(anomalies, key=lambda v: anomalies[v].score)
        t1 = time.perf_counter()
        causes = rank(snap, anomalies, target=target)
        ranked = time.perf_counter() - t1
        t2 = time.perf_counter()
        csgraph.breadth_first_order(snap.csr, snap.index[target], directed=True)
        bfs = time.perf_counter() - t2
        ok = bool(causes) and causes[0].node == root
        print(f"{n:7d} {snap.csr.nnz:7d} {len(anomalies):5d} | {build:8.2f} {1000 * ranked:8.1f}"
              f" {1000 * bfs:7.2f} | {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
