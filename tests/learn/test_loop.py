"""The learning loop's parts: decision refinement, outcome events, fire levels, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from selfheal_kg.detect.base import Scores
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.errors import QueryError
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.loop import LearningLoop
from selfheal_kg.learn.patterns import learned_patterns, record_resolution
from selfheal_kg.model import Candidate, Decision
from selfheal_kg.paths import shipped

LEAK = (("process.memory.usage", "up"), ("http.server.duration.mean", "up"))
ERR = "checkout|http.server.error.ratio"


def cand(playbook: str, utility: float, p: float, risk: str = "low") -> Candidate:
    return Candidate(playbook, "checkout", utility, p, risk, 0, 1.0, True, "test")


def decision(*cands: Candidate) -> Decision:
    return Decision("inc-1", cands[0], cands, "greedy says so")


def make_loop(store: KnowledgeStore, history: Any, exploration: float = 0.2) -> LearningLoop:
    return LearningLoop(store, history.clock, np.random.default_rng(1), exploration)


def test_one_applicable_candidate_keeps_the_greedy_decision(
    store: KnowledgeStore, history: Any
) -> None:
    loop = make_loop(store, history)
    only = decision(cand("restart-service", 0.8, 0.9))
    assert loop.refine(only, "ServiceDown") is only
    assert loop.chooser.choices == 0  # single choices do not widen the exploration budget


def test_exploration_switches_arm_and_says_why(store: KnowledgeStore, history: Any) -> None:
    loop = make_loop(store, history, exploration=1.0)
    # p_success 0 makes the sampled utility of the second arm far above the greedy one's
    d = decision(cand("flush-cache", 0.8, 0.9), cand("restart-service", 0.7, 0.0))
    got = loop.refine(d, "ServiceDown")
    assert got.chosen is not None and got.chosen.playbook == "restart-service"
    assert "explored instead of flush-cache" in got.why
    assert "arm (restart-service, ServiceDown)" in got.why
    assert got.needs_approval is False  # shipped restart-service needs no approval
    unknown = decision(cand("restart-service", 0.8, 0.9), cand("no-such-pb", 0.7, 0.0))
    assert loop.refine(unknown, "ServiceDown").needs_approval is True  # fail safe


def test_no_exploration_budget_keeps_greedy(store: KnowledgeStore, history: Any) -> None:
    loop = make_loop(store, history, exploration=0.0)
    d = decision(cand("flush-cache", 0.8, 0.9), cand("restart-service", 0.7, 0.0))
    got = loop.refine(d, "ServiceDown")
    assert got.chosen == d.chosen and "exploration budget spent" in got.why


def test_outcome_event_marks_recurrences(store: KnowledgeStore, history: Any) -> None:
    loop = make_loop(store, history)
    first = history.run()
    history.run(gap=100.0)  # the same problem again within the hour
    loop.on_event("signal", {})
    assert loop.recurred == []
    loop.on_event("outcome", {})
    assert loop.recurred == [first.id]
    loop.on_event("outcome", {})
    assert loop.recurred == [first.id]  # marked once


def test_outcome_event_proposes_a_draft_that_survives_a_reload(
    store: KnowledgeStore, history: Any, tmp_path: Path
) -> None:
    loop = make_loop(store, history)
    inc = history.run(pattern="Unclassified", playbook=None, symptoms=LEAK)
    record_resolution(store, inc.id, root_cause_type="memory-leak", playbook="restart-service",
                      note="", by="alice", at=history.clock.now())
    loop.on_event("outcome", {})
    (draft,) = loop.drafts
    topo = tmp_path / "topology.ttl"  # written by make_store
    KnowledgeLoader(store, shipped("ontology")).load_all([topo], shipped("playbooks"))
    assert [(d.id, d.incidents) for d in learned_patterns(store)] == [(draft.id, [inc.id])]


def test_false_positive_raises_the_trackers_level_until_reverted(
    store: KnowledgeStore, history: Any
) -> None:
    loop = make_loop(store, history)
    tracker = SignalTracker(levels=loop.levels)
    inc = history.run(playbook=None, symptoms=(("http.server.error.ratio", "up"),))
    assert loop.levels() == {}
    (adj,) = loop.confirm_false_positive(inc.id, "carol")
    adj2 = loop.tuner.adjust(ERR, inc.id, "second confirmation")
    assert adj2 is not None
    assert loop.levels() == {ERR: 0.9}

    def fires(score: float) -> bool:
        opened = []
        for t in range(3):
            s = Scores(np.array([score]), np.array([1], dtype=np.int8), np.array([0.0]))
            opened += tracker.update(float(t), [ERR], ["checkout"], ["m"], s, np.array([1.0]))[0]
        tracker.update(9.0, [ERR], ["checkout"], ["m"],
                       Scores(np.array([0.0]), np.array([1], dtype=np.int8), np.array([0.0])),
                       np.array([0.0]))
        return bool(opened)

    assert not fires(0.85)
    loop.revert(adj2.id)
    loop.revert(adj.id)
    assert loop.levels() == {ERR: 0.8}
    assert fires(0.85)


class BrokenStore:
    """A store whose every query fails."""

    def query(self, sparql: str) -> Any:
        raise QueryError("store is down")


def test_a_store_error_while_learning_is_kept_not_raised(history: Any) -> None:
    loop = LearningLoop(BrokenStore(), history.clock, np.random.default_rng(0))  # type: ignore[arg-type]
    loop.on_event("outcome", {})
    assert loop.last_error == "QueryError: store is down"
