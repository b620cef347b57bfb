from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from selfheal_kg.decide.choose import History, blast_radius, choose, p_success


@dataclass(frozen=True)
class PB:
    id: str
    handles: tuple[str, ...] = ("ServiceDown",)
    risk: str = "low"
    cost: float = 1.0
    requires_approval: bool = False
    target_types: tuple[str, ...] = ("service",)


def chain() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from([("gw", "fe"), ("fe", "co"), ("co", "inv"), ("co", "pay")])
    return g


def test_blast_radius_counts_transitive_callers() -> None:
    g = chain()
    assert blast_radius(g, "inv") == 3
    assert blast_radius(g, "gw") == 0
    assert blast_radius(g, "unknown") == 0


def test_posterior_moves_with_history() -> None:
    prior = p_success("low", History())
    assert prior == 0.9
    assert p_success("low", History(0, 10)) < 0.5 < prior


def test_choice_prefers_higher_utility_and_records_every_candidate() -> None:
    pbs = [PB("restart"), PB("scale", risk="medium", cost=2.0)]
    d = choose("i1", "ServiceDown", "inv", "service", pbs, chain(), {})
    assert d.chosen is not None and d.chosen.playbook == "restart"
    assert [c.playbook for c in d.candidates] == ["restart", "scale"]
    assert "alternatives: scale=" in d.why
    assert not d.needs_approval


def test_repeated_failures_change_the_choice() -> None:
    pbs = [PB("restart"), PB("scale", risk="medium", cost=1.0)]
    hist = {("restart", "ServiceDown"): History(0, 8)}
    d = choose("i1", "ServiceDown", "inv", "service", pbs, chain(), hist)
    assert d.chosen is not None and d.chosen.playbook == "scale"


def test_inapplicable_target_type_escalates() -> None:
    d = choose("i1", "ServiceDown", "db", "database", [PB("restart")], chain(), {})
    assert d.chosen is None
    assert "escalate" in d.why
    assert d.candidates[0].applicable is False


def test_high_risk_needs_approval() -> None:
    d = choose("i1", "ServiceDown", "inv", "service", [PB("failover", risk="high")], chain(), {})
    assert d.needs_approval


@dataclass(frozen=True)
class Step:
    action: str


@dataclass(frozen=True)
class PBSteps(PB):
    steps: tuple[Step, ...] = (Step("restart"),)


def test_playbook_without_an_executor_is_not_applicable() -> None:
    pbs = [PBSteps("restart"), PBSteps("reboot", steps=(Step("reboot-host"),))]
    d = choose("i1", "ServiceDown", "inv", "service", pbs, chain(), {}, available={"reboot-host"})
    assert d.chosen is not None and d.chosen.playbook == "reboot"
    restart = next(c for c in d.candidates if c.playbook == "restart")
    assert not restart.applicable and "no executor offers restart" in restart.reason
    none = choose("i1", "ServiceDown", "inv", "service", pbs, chain(), {}, available=set())
    assert none.chosen is None


@dataclass(frozen=True)
class PBRollback(PB):
    rollback: tuple[Step, ...] = (Step("scale-back"),)


def test_a_rollback_mitigates_the_blast_radius_penalty() -> None:
    plain, undoable = PB("plain", risk="medium"), PBRollback("undoable", risk="medium")
    d = choose("i1", "ServiceDown", "inv", "service", [plain, undoable], chain(), {})
    by = {c.playbook: c for c in d.candidates}
    assert by["undoable"].utility > by["plain"].utility
    assert "mitigations=rollback" in by["undoable"].reason
    assert "mitigations=none" in by["plain"].reason
    assert d.chosen is not None and d.chosen.playbook == "undoable"


@dataclass(frozen=True)
class OnStep:
    action: str
    acts_on: str = "target"


@dataclass(frozen=True)
class PBOn:
    id: str
    steps: tuple[OnStep, ...]
    handles: tuple[str, ...] = ("HighErrorRate",)
    risk: str = "medium"
    cost: float = 1.0
    requires_approval: bool = False
    target_types: tuple[str, ...] = ("service",)


def test_a_playbook_whose_step_cannot_act_on_the_target_now_is_not_applicable() -> None:
    asked: list[tuple[str, str | None]] = []

    def unavailable(action: str, target: str | None) -> str | None:
        asked.append((action, target))
        if action == "lb_drain" and target == "co":
            return "no instance of co stands out: nothing to drain"
        return None

    pbs = [
        PBOn("recover", (OnStep("breaker", acts_on="callers"), OnStep("lb_drain"))),
        PBOn("restart", (OnStep("restart"),), cost=3.0),
    ]
    d = choose("i1", "HighErrorRate", "co", "service", pbs, chain(), {}, unavailable)
    assert d.chosen is not None and d.chosen.playbook == "restart"
    recover = next(c for c in d.candidates if c.playbook == "recover")
    assert not recover.applicable
    assert recover.reason == "not applicable: no instance of co stands out: nothing to drain"
    # a step on the callers is only checked for an executor, not against the target
    assert ("breaker", None) in asked and ("lb_drain", "co") in asked


def test_the_same_playbook_applies_when_its_executor_can_act() -> None:
    pbs = [PBOn("recover", (OnStep("breaker", acts_on="callers"), OnStep("lb_drain")))]
    d = choose("i1", "HighErrorRate", "co", "service", pbs, chain(), {}, lambda a, t: None)
    assert d.chosen is not None and d.chosen.playbook == "recover"
