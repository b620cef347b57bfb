"""Throughput of the detectors: points/s at 1k and 10k series, beside a numpy-only baseline.

Usage: ``python bench/bench_detect.py [--steps N]``. Each step is one vectorised update of
every series (random walk values). The baseline is a plain rolling mean over the same
arrays (a ring buffer and ``mean(axis=1)``): the floor of what any windowed numpy detector
costs, so the ratio shows the price of medians, profiles and fusion.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from selfheal_kg.detect.registry import DETECTORS, make_detector  # noqa: E402


def rolling_mean(values: np.ndarray, window: int = 60) -> float:
    """Return seconds for a plain rolling mean over ``values`` (steps x series)."""
    buf = np.zeros((values.shape[1], window))
    start = time.perf_counter()
    for i, row in enumerate(values):
        buf[:, i % window] = row
        _ = np.abs(row - buf.mean(axis=1))
    return time.perf_counter() - start


def run(name: str, values: np.ndarray) -> float:
    """Return seconds for one detector over ``values`` (steps x series)."""
    det = make_detector(name)
    ids = [f"svc{k}/latency" for k in range(values.shape[1])]
    start = time.perf_counter()
    for i, row in enumerate(values):
        det.update(300.0 * i, ids, row)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Print points/s per detector and series count; return 0."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--detectors", nargs="*", default=["robust_z", "ensemble"],
                    choices=sorted(DETECTORS))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'series':>7} {'detector':12} {'points/s':>12} {'us/update':>10}")
    for n in (1_000, 10_000):
        values = 100 + np.cumsum(rng.normal(0, 1, (args.steps, n)), axis=0)
        for name, secs in [("numpy-mean", rolling_mean(values)),
                           *((d, run(d, values)) for d in args.detectors)]:
            pts = args.steps * n / secs
            print(f"{n:7d} {name:12} {pts:12,.0f} {1e6 * secs / args.steps:10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
