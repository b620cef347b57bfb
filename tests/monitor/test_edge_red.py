from __future__ import annotations

import pytest

from selfheal_kg.monitor.edge_red import EdgeRed, quantile
from selfheal_kg.monitor.spans import LATENCY_BOUNDS, Edge, _bucketed


def edge(calls: int, errors: int, latencies: list[float]) -> Edge:
    buckets: tuple[int, ...] = ()
    for s in latencies:
        buckets = _bucketed(buckets, s)
    return Edge(
        "payment", "payments-db", "database", 0.0, 0.0, calls, errors, sum(latencies), 0.0, buckets
    )


def test_interval_red_from_cumulative_edge_counters() -> None:
    red = EdgeRed()
    assert red.points([edge(2, 0, [0.004, 0.004])], 100.0) == []  # first sight: no interval
    later = edge(12, 5, [0.004, 0.004] + [0.3] * 10)
    got = {p.metric: p.value for p in red.points([later], 110.0)}
    assert got["span.client.request.rate"] == pytest.approx(1.0)
    assert got["span.client.error.ratio"] == pytest.approx(0.5)
    assert got["span.client.duration.mean"] == pytest.approx(0.3)
    assert 0.25 < got["span.client.duration.p95"] <= 0.5
    pts = red.points([later], 120.0)
    assert {p.metric: p.value for p in pts} == {"span.client.request.rate": 0.0}
    assert all(p.node == "payment" and p.series.startswith("payment->payments-db|") for p in pts)


def test_quantile_interpolates_inside_the_bucket() -> None:
    counts = [0] * (len(LATENCY_BOUNDS) + 1)
    counts[1] = 10  # (0.005, 0.01]
    assert quantile(counts, 0.5) == pytest.approx(0.0075)
    assert quantile([0] * len(counts), 0.5) == 0.0
