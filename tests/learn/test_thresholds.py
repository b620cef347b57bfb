"""Fire levels raised by confirmed false positives: bounded, recorded, reversible."""

from __future__ import annotations

from typing import Any

import pytest

from selfheal_kg.errors import NotFound
from selfheal_kg.kg import records
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.thresholds import ThresholdTuner

SYM = (("http.server.error.ratio", "up"), ("http.server.duration.mean", "up"))
ERR = "checkout|http.server.error.ratio"
DUR = "checkout|http.server.duration.mean"


def test_false_positive_raises_each_series_once(store: KnowledgeStore, history: Any) -> None:
    tuner = ThresholdTuner(store, history.clock)
    inc = history.run(playbook=None, symptoms=SYM)
    adjs = tuner.confirm_false_positive(inc.id, "carol", "load test")
    assert sorted(a.series for a in adjs) == [DUR, ERR]
    assert all((a.old, a.new) == (0.8, 0.85) for a in adjs)
    assert "carol" in adjs[0].reason and adjs[0].incident == inc.id
    assert tuner.levels() == {ERR: 0.85, DUR: 0.85}
    assert tuner.confirm_false_positive(inc.id, "carol") == []  # idempotent
    assert records.list_incidents(store, "false-positive", 10)[0]["id"] == inc.id


def test_levels_are_bounded(store: KnowledgeStore, history: Any) -> None:
    tuner = ThresholdTuner(store, history.clock)
    for _ in range(6):
        inc = history.run(playbook=None, symptoms=SYM[:1])
        tuner.confirm_false_positive(inc.id, "carol")
    assert tuner.levels()[ERR] == pytest.approx(0.98)
    inc = history.run(playbook=None, symptoms=SYM[:1])
    assert tuner.confirm_false_positive(inc.id, "carol") == []  # at the ceiling: no change
    assert len(tuner.adjustments()) == 4  # 0.85, 0.90, 0.95, 0.98


def test_revert_undoes_one_adjustment(store: KnowledgeStore, history: Any) -> None:
    tuner = ThresholdTuner(store, history.clock)
    first = tuner.confirm_false_positive(history.run(playbook=None, symptoms=SYM[:1]).id, "c")
    tuner.confirm_false_positive(history.run(playbook=None, symptoms=SYM[:1]).id, "c")
    assert tuner.levels()[ERR] == pytest.approx(0.9)
    reverted = tuner.revert(first[0].id)
    assert reverted.reverted
    assert tuner.levels()[ERR] == pytest.approx(0.85)
    # a fresh tuner reads the same state from the graph
    again = ThresholdTuner(store, history.clock)
    assert again.levels()[ERR] == pytest.approx(0.85)
    assert [a.reverted for a in again.adjustments()] == [True, False]
    with pytest.raises(NotFound):
        tuner.revert(first[0].id)
    with pytest.raises(NotFound):
        tuner.revert("nope")


def test_unknown_incident_and_bad_parameters(store: KnowledgeStore, history: Any) -> None:
    with pytest.raises(NotFound):
        ThresholdTuner(store, history.clock).confirm_false_positive("nope", "x")
    with pytest.raises(ValueError, match="ceiling"):
        ThresholdTuner(store, history.clock, base=0.99)
