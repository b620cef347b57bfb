from __future__ import annotations

import numpy as np

from selfheal_kg.rca.batch import Rows, deviations, metric_direction, node_anomalies
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.rank import rank


def rows(node: str, metric: str, values: list[float] | np.ndarray, t0: float = 0.0) -> Rows:
    return [(t0 + 300.0 * i, node, metric, float(v)) for i, v in enumerate(values)]


def test_direction_of_metric_kinds() -> None:
    assert metric_direction("latency.p99") == "up"
    assert metric_direction("availability.Average") == "down"
    assert metric_direction("requests.Sum") == "both"


def test_noisy_metric_within_its_own_range_does_not_count() -> None:
    rng = np.random.default_rng(1)
    noisy = rng.normal(100, 1, 200)
    noisy[[20, 90]] = [160.0, 40.0]  # normal operation already reaches these
    base = rows("aws", "requests.Sum", noisy)
    inc = rows("aws", "requests.Sum", [150.0, 50.0], t0=1e6)
    assert deviations(base, inc) == []


def test_wrong_direction_is_not_anomalous() -> None:
    base = rows("svc", "availability.Average", [99.0, 100.0, 99.5, 100.0])
    assert deviations(base, rows("svc", "availability.Average", [100.0], t0=1e6)) == []
    base = rows("svc", "latency.Average", [0.10, 0.11, 0.10, 0.12])
    assert deviations(base, rows("svc", "latency.Average", [0.01], t0=1e6)) == []


def test_bigger_excess_scores_higher_and_onset_is_first_point_out_of_range() -> None:
    base = rows("a", "latency.Average", np.full(50, 0.01)) + rows(
        "b", "latency.Average", np.full(50, 0.01))
    inc = rows("a", "latency.Average", [0.01, 0.02, 0.03], t0=1e6) + rows(
        "b", "latency.Average", [0.01, 0.01, 1.0], t0=1e6)
    devs = {d.node: d for d in deviations(base, inc)}
    assert devs["b"].score > devs["a"].score > 0
    assert devs["a"].onset == 1e6 + 300 and devs["a"].z > 0


def test_fault_beats_a_noisy_sibling_in_the_ranking() -> None:
    # web calls search (faulty) and aws (noisy: large swings are normal for it)
    snap = TopologySnapshot.from_edges([("web", "search"), ("web", "aws"), ("other", "x")])
    rng = np.random.default_rng(2)
    base = (rows("web", "latency.Average", 0.1 + rng.normal(0, 0.002, 100))
            + rows("search", "latency.Average", 0.05 + rng.normal(0, 0.001, 100))
            + rows("aws", "latency.Average", 0.2 + rng.normal(0, 0.05, 100))
            + rows("x", "latency.Average", 0.1 + rng.normal(0, 0.001, 100)))
    inc = (rows("web", "latency.Average", [0.1, 0.6, 0.6], t0=1e6)
           + rows("search", "latency.Average", [0.05, 0.55, 0.55], t0=1e6)
           + rows("aws", "latency.Average", [0.3, 0.25, 0.3], t0=1e6)
           + rows("x", "latency.Average", [5.0, 5.0, 5.0], t0=1e6))  # not under the target
    anomalies = node_anomalies(deviations(base, inc))
    assert "aws" not in anomalies
    causes = rank(snap, anomalies, target="web", observed={"web", "search", "aws", "x"})
    assert causes[0].node == "search"
    assert "x" not in {c.node for c in causes}
