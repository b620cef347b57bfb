from __future__ import annotations

import numpy as np

from selfheal_kg.rca.batch import (
    MetricDeviation,
    Rows,
    deviations,
    fold_proxies,
    metric_direction,
    node_anomalies,
    rank_incident,
)
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


def flat(node: str, metric: str, value: float, n: int = 60) -> Rows:
    rng = np.random.default_rng(sum(map(ord, node + metric)))
    return rows(node, metric, value * (1 + rng.normal(0, 0.02, n)))


def test_anomaly_present_throughout_the_recent_rows_is_a_regime_not_the_incident() -> None:
    base = flat("lb", "availability.Average", 100.0) + flat("api", "latency.Average", 0.1)
    recent = (rows("lb", "availability.Average", [0.0, 0.0], t0=1e6)
              + rows("api", "latency.Average", [0.1, 0.9], t0=1e6))  # fault began just now
    inc = (rows("lb", "availability.Average", [0.0, 0.0], t0=2e6)
           + rows("api", "latency.Average", [1.0, 1.0], t0=2e6))
    assert {d.node for d in deviations(base, inc)} == {"lb", "api"}
    devs = {d.node: d for d in deviations(base, inc, recent)}
    assert set(devs) == {"api"}
    assert devs["api"].score == {d.node: d for d in deviations(base, inc)}["api"].score


def test_partly_present_regime_lowers_the_score() -> None:
    base = flat("a", "latency.Average", 0.01)
    inc = rows("a", "latency.Average", [0.05], t0=2e6)
    full = deviations(base, inc)[0].score
    lowered = deviations(base, inc, rows("a", "latency.Average", [0.012, 0.012], t0=1e6))[0].score
    assert 0 < lowered < full


def test_metrics_filter_by_name_or_family() -> None:
    devs = [MetricDeviation("a", "latency.p99", 9.0, 0.9, 1.0),
            MetricDeviation("a", "latency.Average", 5.0, 0.4, 2.0),
            MetricDeviation("b", "availability.Average", -5.0, 0.5, 1.0)]
    assert node_anomalies(devs, {"latency.Average"})["a"].score == 0.4
    assert set(node_anomalies(devs, {"latency"})) == {"a"}
    assert node_anomalies(devs, {"latency"})["a"].score == 0.9
    assert set(node_anomalies(devs)) == {"a", "b"}


def test_proxy_deviation_is_folded_onto_its_service_keeping_its_name_as_evidence() -> None:
    devs = fold_proxies([MetricDeviation("lb_remote", "latency.Average", 9.0, 0.7, 1.0)],
                        {"lb_remote": "api"})
    assert devs[0].node == "api" and devs[0].source == "lb_remote"
    assert node_anomalies(devs)["api"].evidence == ("lb_remote/latency.Average",)


def test_rank_incident_blames_the_service_behind_a_balancer() -> None:
    # web calls its own handler-side view of search only through a balancer node; search's
    # own metrics look fine, the balancer (its callers' view) fails; the db is slow but a
    # latency anomaly does not explain errors.
    snap = TopologySnapshot.from_edges([("web", "svc-searc.lb.example_remote"),
                                        ("web", "search_ecs"), ("search_ecs", "db")])
    base = (flat("web", "availability.Average", 100.0)
            + flat("svc-searc.lb.example_remote", "availability.Average", 100.0)
            + flat("search_ecs", "availability.Average", 100.0)
            + flat("db", "latency.Average", 0.01))
    inc = (rows("web", "availability.Average", [90.0, 80.0], t0=2e6)
           + rows("svc-searc.lb.example_remote", "availability.Average", [60.0, 50.0], t0=2e6)
           + rows("search_ecs", "availability.Average", [100.0, 100.0], t0=2e6)
           + rows("db", "latency.Average", [0.015, 0.015], t0=2e6))
    causes = rank_incident(snap, base, inc, target="web")
    assert causes[0].node == "search_ecs"
    assert causes[0].evidence == ("svc-searc.lb.example_remote/availability.Average",)
    only = rank_incident(snap, base, inc, target="web", metrics={"availability"}, mode="walk")
    assert "db" not in {c.node for c in only}
