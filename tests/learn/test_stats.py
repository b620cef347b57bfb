"""Success statistics, recurrence and the history the decision is fed with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx
import pytest

from selfheal_kg.decide.choose import History, choose
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.stats import (
    history_for_decision,
    incident_rows,
    mark_recurrences,
    success_stats,
)

KEY = ("restart-service", "ServiceDown", "high")


def five_trials(h: Any) -> dict[str, str]:
    """A ok, B ok, C ok but recurs (D 600 s after), D ok, E failed: 3 successes, 2 failures."""
    ids = {}
    for name in "ABC":
        ids[name] = h.run().id
    ids["D"] = h.run(gap=600.0).id
    ids["E"] = h.run(success=False).id
    return ids


def test_stats_count_recurrence_as_failure_with_risk_prior(
    store: KnowledgeStore, history: Any
) -> None:
    five_trials(history)
    history.run(node="cart")
    stats = success_stats(store)
    s = stats[KEY]
    assert (s.successes, s.failures, s.recurrences) == (3, 2, 1)
    # restart-service is low risk: prior Beta(9, 1), as in decide.choose
    assert (s.alpha, s.beta) == (12.0, 3.0)
    assert s.mean == pytest.approx(0.8)
    assert s.recurrence_rate == pytest.approx(0.2)
    assert s.mean_repair == pytest.approx(14.0) and s.median_repair == pytest.approx(14.0)
    other = stats[("restart-service", "ServiceDown", "default")]
    assert (other.successes, other.failures) == (1, 0)
    assert history_for_decision(store) == {("restart-service", "ServiceDown"): History(4, 2)}


def test_success_rate_updates_after_each_outcome(store: KnowledgeStore, history: Any) -> None:
    assert success_stats(store) == {}
    history.run()
    assert success_stats(store)[KEY].mean == pytest.approx(10 / 11)
    history.run(success=False)
    assert success_stats(store)[KEY].mean == pytest.approx(10 / 12)
    history.run(success=False)
    assert success_stats(store)[KEY].mean == pytest.approx(10 / 13)


def test_window_limits_the_incidents_counted(store: KnowledgeStore, history: Any) -> None:
    first = history.run()
    history.run(success=False)
    only_first = (first.opened - 1, first.opened + 1)
    s = success_stats(store, window=only_first)[KEY]
    assert (s.successes, s.failures) == (1, 0)


def test_recurrence_window_is_a_parameter(store: KnowledgeStore, history: Any) -> None:
    history.run()
    history.run(gap=600.0)
    assert history_for_decision(store)[("restart-service", "ServiceDown")] == History(1, 1)
    short = history_for_decision(store, recurrence_window=300.0)
    assert short[("restart-service", "ServiceDown")] == History(2, 0)


def test_other_node_or_pattern_is_not_a_recurrence(store: KnowledgeStore, history: Any) -> None:
    history.run()
    history.run(node="cart", gap=60.0)
    history.run(pattern="HighLatency", playbook="scale-out", gap=60.0)
    assert not any(r.recurred for r in incident_rows(store))


def test_mark_recurrences_writes_the_flag_once(store: KnowledgeStore, history: Any) -> None:
    ids = five_trials(history)
    assert mark_recurrences(store) == [ids["C"]]
    assert mark_recurrences(store) == []
    flagged = store.query(
        "PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>\n"
        "SELECT ?id WHERE { ?i shk:incidentId ?id ; shk:hasOutcome/shk:recurred true }"
    ).dicts()  # type: ignore[union-attr]
    assert flagged == [{"id": ids["C"]}]
    # the flag persists even for a reader with a zero window
    assert [r.id for r in incident_rows(store, window=0.0) if r.recurred] == [ids["C"]]


@dataclass(frozen=True)
class PB:
    id: str
    risk: str
    handles: tuple[str, ...] = ("ServiceDown",)
    cost: float = 1.0
    requires_approval: bool = False
    target_types: tuple[str, ...] = ("Service",)


def test_decision_changes_after_repeated_failures(store: KnowledgeStore, history: Any) -> None:
    pbs = [PB("restart-service", "low"), PB("redeploy", "medium")]

    def decide() -> str:
        d = choose("i", "ServiceDown", "checkout", "Service", pbs, nx.DiGraph(),
                   history_for_decision(store))
        assert d.chosen is not None
        return d.chosen.playbook

    assert decide() == "restart-service"
    history.run()
    assert decide() == "restart-service"
    for _ in range(5):
        history.run(success=False)
    # 1 ok / 5 failed: posterior (9+1)/(10+6) = 0.625 - cost 0.1 < medium prior 0.7 - 0.1
    assert decide() == "redeploy"
