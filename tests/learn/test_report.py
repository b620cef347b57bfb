"""The effectiveness report against a hand count of a small history."""

from __future__ import annotations

from typing import Any

import pytest

from selfheal_kg.incident import Status
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.report import effectiveness, falling_playbooks
from selfheal_kg.learn.stats import incident_rows
from selfheal_kg.learn.thresholds import ThresholdTuner
from selfheal_kg.model import Outcome


def fill(store: KnowledgeStore, h: Any) -> None:
    """A ok, B ok (recurs: C), C ok, D failed (2 steps); E ok on cart; F, I noise closed
    without action; G confirmed false positive; H escalated to a human (a new pattern)."""
    h.run()
    h.run()
    h.run(gap=600.0)
    h.run(success=False, steps=2)
    h.run(node="cart", pattern="HighLatency", playbook="scale-out")
    for _ in range(2):  # F, I
        h.close_without_action(h.run(pattern="HighErrorRate", playbook=None, detector="ewma"))
    g = h.run(pattern="HighErrorRate", playbook=None, detector="ewma")
    ThresholdTuner(store, h.clock).confirm_false_positive(g.id, "carol")
    esc = h.run(pattern="DiskFull", playbook=None, symptoms=(("disk.free", "down"),))
    h.book.close(esc, Outcome(esc.id, False, None, "no playbook"), h.clock.advance(5),
                 Status.ESCALATED)


def test_overall_figures_match_the_hand_count(store: KnowledgeStore, history: Any) -> None:
    fill(store, history)
    rep = effectiveness(store)
    o = rep["overall"]
    assert o["incidents"] == 9
    assert o["mttd"] == pytest.approx(10.0)  # G was never closed: no timings
    assert o["mttr"] == pytest.approx(30.0)  # only verified recoveries
    assert o["success_rate"] == pytest.approx(3 / 5)  # A, C, E of A-E (B recurred, D failed)
    assert o["false_positive_rate"] == pytest.approx(3 / 9)  # F, I, G (H escalated: not noise)
    assert o["recurrence_rate"] == pytest.approx(1 / 4)  # B of the successes A, B, C, E
    assert o["actions_per_incident"] == pytest.approx(6 / 9)


def test_groups(store: KnowledgeStore, history: Any) -> None:
    fill(store, history)
    rep = effectiveness(store)
    pb = {r["playbook"]: r for r in rep["by_playbook"]}
    assert pb["restart-service"]["incidents"] == 4
    assert pb["restart-service"]["success_rate"] == pytest.approx(0.5)
    assert pb["restart-service"]["actions_per_incident"] == pytest.approx(5 / 4)
    assert pb["scale-out"]["success_rate"] == 1.0
    svc = {r["service"]: r["incidents"] for r in rep["by_service"]}
    assert svc == {"cart": 1, "checkout": 8}
    pat = {r["pattern"]: r for r in rep["by_pattern"]}
    assert pat["HighErrorRate"]["false_positive_rate"] == 1.0
    assert pat["DiskFull"]["success_rate"] is None
    assert sum(r["incidents"] for r in rep["by_period"]) == 9
    assert all(r["period"].endswith("T00:00:00Z") for r in rep["by_period"])


def test_suggestions(store: KnowledgeStore, history: Any) -> None:
    fill(store, history)
    sugg = effectiveness(store)["suggestions"]
    kinds = {(s["kind"], s["subject"]) for s in sugg}
    assert ("pattern-without-playbook", "DiskFull") in kinds
    assert ("noisy-detector", "ewma") in kinds
    assert ("noisy-detector", "robust_z") not in kinds
    assert not any(s["subject"] in {"ServiceDown", "HighLatency"} for s in sugg)


def test_falling_success(store: KnowledgeStore, history: Any) -> None:
    for ok in (True, True, True, False, False):
        history.run(success=ok)
    (s,) = falling_playbooks(incident_rows(store), last_n=2)
    assert (s["subject"], s["earlier"], s["recent"]) == ("restart-service", 1.0, 0.0)
    assert falling_playbooks(incident_rows(store), last_n=5) == []  # nothing earlier to compare
