"""Playbook requirements judged on the active signals (decide/requirements.py)."""

from __future__ import annotations

import json

from selfheal_kg.decide.playbook import SCHEMA_PATH
from selfheal_kg.decide.requirements import REQUIREMENTS, outlier_instance, single_instance, unmet
from selfheal_kg.model import Direction, Signal


def sig(
    series: str,
    metric: str = "http.server.error.ratio",
    *,
    active: bool = True,
    direction: Direction = "up",
) -> Signal:
    node = series.split("|", maxsplit=1)[0]
    return Signal(f"{series}@1", series, node, metric, "robust_z", 1.0, direction,
                  1.0, 1.0, 1.0, 0.0, active)


def test_one_instance_failing_alone_is_an_outlier() -> None:
    signals = [sig("co|http.server.error.ratio|co-2"), sig("fe|http.server.error.ratio")]
    assert outlier_instance("co", signals) is None


def test_instances_failing_alike_are_no_outlier() -> None:
    signals = [sig("co|http.server.error.ratio|co-2"), sig("co|http.server.error.ratio|co")]
    assert outlier_instance("co", signals) == (
        "2 instances of co deviate alike in error (co, co-2)")


def test_errors_decide_before_latency() -> None:
    # one instance fails; the other answers a little slower meanwhile: still an outlier
    signals = [sig("co|http.server.error.ratio|co-2"),
               sig("co|http.server.duration.p95|co", "http.server.duration.p95")]
    assert outlier_instance("co", signals) is None
    # nothing fails: one instance alone is slow
    assert outlier_instance("co", [sig("co|http.server.duration.mean|co-2",
                                       "http.server.duration.mean")]) is None


def test_a_node_level_signal_is_no_outlier() -> None:
    # one instance only (its series is the node's), or a signal on the node as a whole
    reason = outlier_instance("co", [sig("co|http.server.error.ratio")])
    assert reason is not None and "as a whole" in reason


def test_cleared_falling_or_unrelated_signals_do_not_count() -> None:
    signals = [
        sig("co|http.server.error.ratio|co-2", active=False),
        sig("co|http.server.request.rate|co-2", "http.server.request.rate"),
        sig("co|http.server.duration.mean|co", "http.server.duration.mean", direction="down"),
    ]
    assert outlier_instance("co", signals) == "no error or latency signal on co"


def test_unmet_names_each_failed_requirement() -> None:
    assert unmet(["outlier-instance"], "co", [sig("co|http.server.error.ratio|co")]) == []
    assert unmet(["outlier-instance"], "co", []) == [
        "requires outlier-instance: no error or latency signal on co"]


def test_the_playbook_schema_knows_every_registered_requirement() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["properties"]["requires"]["items"]["enum"]) == set(REQUIREMENTS)


def test_a_single_instance_deviates_on_its_own_series() -> None:
    assert single_instance("inv", [sig("inv|http.server.duration.mean",
                                       "http.server.duration.mean")]) is None
    reason = single_instance("co", [sig("co|http.server.error.ratio|co-2")])
    assert reason == "co runs as several instances (co-2 deviate)"
    assert single_instance("co", []) == "no error or latency signal on co"
