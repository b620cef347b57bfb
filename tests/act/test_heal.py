from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.heal import Healer
from selfheal_kg.clock import FakeClock
from selfheal_kg.errors import ActionError
from selfheal_kg.model import FactValue, StepResult


@dataclass(frozen=True)
class St:
    action: str
    params: Mapping[str, FactValue] = field(default_factory=dict)
    retries: int = 0


class FakeReplicas:
    """A fake executor holding replica counts per target, failing on request."""

    actions = frozenset({"scale", "boom"})

    def __init__(self) -> None:
        self.replicas = {"svc": 1}
        self.calls: list[str] = []
        self.fail_times = 0

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        return {"replicas": self.replicas[target]}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        self.calls.append(action)
        if action == "boom":
            raise ActionError(action, target, "exploded")
        if self.fail_times > 0:
            self.fail_times -= 1
            return ActionReport(False, "transient")
        self.replicas[target] = int(params["replicas"])
        return ActionReport(True, f"scaled to {params['replicas']}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        self.replicas[target] = int(state["replicas"])
        return ActionReport(True, "restored")


def run(
    steps: list[St], ex: FakeReplicas, dry: bool = False
) -> tuple[bool, list[tuple[str, StepResult]]]:
    seen: list[tuple[str, StepResult]] = []
    healer = Healer({"scale": ex, "boom": ex}, FakeClock())
    res = healer.run(steps, "svc", lambda r, phase: seen.append((phase, r)), dry_run=dry)
    return res.ok, seen


def test_steps_run_with_rollback_points() -> None:
    ex = FakeReplicas()
    ok, seen = run([St("scale", {"replicas": 3})], ex)
    assert ok and ex.replicas["svc"] == 3
    assert seen[0][1].rollback_point == {"replicas": 1}


def test_failed_step_rolls_back_done_steps_in_reverse() -> None:
    ex = FakeReplicas()
    ok, seen = run([St("scale", {"replicas": 3}), St("boom")], ex)
    assert not ok
    assert ex.replicas["svc"] == 1
    phases = [p for p, _ in seen]
    # the failed step may have half-changed its state: it is restored too, newest first
    assert phases == ["repair", "repair", "rollback", "rollback"]
    assert [r.step for p, r in seen if p == "rollback"] == [2, 1]
    assert "exploded" in seen[1][1].detail


def test_retries_then_succeeds() -> None:
    ex = FakeReplicas()
    ex.fail_times = 2
    ok, _ = run([St("scale", {"replicas": 2}, retries=2)], ex)
    assert ok and ex.calls == ["scale"] * 3


def test_dry_run_executes_nothing() -> None:
    ex = FakeReplicas()
    ok, seen = run([St("scale", {"replicas": 5})], ex, dry=True)
    assert ok and ex.calls == [] and ex.replicas["svc"] == 1
    assert seen[0][1].dry_run and "would scale" in seen[0][1].detail


def test_unknown_action_fails_without_running() -> None:
    ex = FakeReplicas()
    ok, seen = run([St("reboot-the-world")], ex)
    assert not ok and ex.calls == []
    assert seen[0][1].detail == "no executor for action"


@dataclass(frozen=True)
class OnCallers:
    action: str
    params: Mapping[str, FactValue] = field(default_factory=dict)
    retries: int = 0
    acts_on: str = "callers"


class FakeBreakers:
    """Client-side breakers per (service, peer); the service named ``broken`` refuses."""

    actions = frozenset({"breaker"})

    def __init__(self) -> None:
        self.state: dict[tuple[str, str], str] = {}

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        peer = str(params["peer"])
        return {"peer": peer, "state": self.state.get((target, peer), "closed")}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        if target == "broken":
            raise ActionError(action, target, "admin API down")
        self.state[(target, str(params["peer"]))] = str(params["state"])
        return ActionReport(True, f"{target}: breaker to {params['peer']} {params['state']}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        self.state[(target, str(state["peer"]))] = str(state["state"])
        return ActionReport(True, "restored")


def test_a_step_on_callers_acts_on_each_caller_with_the_target_as_its_peer() -> None:
    ex = FakeBreakers()
    seen: list[tuple[str, StepResult]] = []
    healer = Healer({"breaker": ex}, FakeClock(), callers=lambda n: ["gw", "fe"])
    step = OnCallers("breaker", {"peer": "${target}", "state": "open"})
    res = healer.run([step], "co", lambda r, phase: seen.append((phase, r)))
    assert res.ok
    assert ex.state == {("fe", "co"): "open", ("gw", "co"): "open"}
    # one result per caller, sorted; only the last closes the step
    assert [(p, r.target, r.params["peer"]) for p, r in seen] == [
        ("repair-part", "fe", "co"), ("repair", "gw", "co")
    ]


def test_a_failing_caller_rolls_back_the_callers_already_changed() -> None:
    ex = FakeBreakers()
    seen: list[tuple[str, StepResult]] = []
    healer = Healer({"breaker": ex}, FakeClock(), callers=lambda n: ["a-fe", "broken"])
    step = OnCallers("breaker", {"peer": "${target}", "state": "open"})
    res = healer.run([step], "co", lambda r, phase: seen.append((phase, r)))
    assert not res.ok
    # every place with a rollback point is put back, newest first (the failed one too)
    assert ex.state[("a-fe", "co")] == "closed"
    assert [(r.action, r.target) for r in res.rolled_back] == [
        ("restore:breaker", "broken"), ("restore:breaker", "a-fe")
    ]


def test_a_step_on_callers_of_a_node_nobody_calls_does_nothing() -> None:
    ex = FakeBreakers()
    healer = Healer({"breaker": ex}, FakeClock(), callers=lambda n: [])
    step = OnCallers("breaker", {"peer": "${target}", "state": "open"})
    res = healer.run([step], "gw", lambda r, phase: None)
    assert res.ok and ex.state == {}
    assert res.steps[0].detail == "no callers: nothing to do"
