"""RepairFlow with a journal: steps journaled before they run; recovery after a crash."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.heal import Healer
from selfheal_kg.act.journal import Journal, State
from selfheal_kg.act.repairs import RepairFlow
from selfheal_kg.act.safety import SafetyGate
from selfheal_kg.clock import FakeClock
from selfheal_kg.incident import Incident, IncidentBook, Recorder, Status
from selfheal_kg.kg import records
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH
from selfheal_kg.kg.store import OxigraphStore
from selfheal_kg.model import Candidate, Decision, Diagnosis, FactValue, Signal


@dataclass(frozen=True)
class St:
    action: str
    params: Mapping[str, FactValue] = field(default_factory=dict)
    retries: int = 0
    timeout_seconds: float = 20.0


@dataclass(frozen=True)
class Crit:
    metric: str = "health"
    condition: str = "health == up"
    deadline_seconds: float = 30.0


@dataclass(frozen=True)
class Pb:
    id: str
    steps: tuple[St, ...]
    rollback: tuple[St, ...] = ()
    success: tuple[Crit, ...] = (Crit(),)
    handles: tuple[str, ...] = ("ServiceDown",)
    risk: str = "low"
    cost: float = 1.0
    requires_approval: bool = False
    target_types: tuple[str, ...] = ("Service",)
    mitigation: bool = False


class Proc:
    """A fake process executor: ``start`` and ``restart`` bump the pid; counts executions."""

    actions = frozenset({"restart", "start", "drain"})

    def __init__(self, journal: Journal | None = None) -> None:
        self.pid = 0
        self.executed: list[str] = []
        self.restored: list[Mapping[str, FactValue]] = []
        self.journal = journal
        self.seen_intents: list[State] = []
        self.fail: set[str] = set()
        self.lock = threading.Lock()

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        return {"running": self.pid > 0, "pid": self.pid}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        with self.lock:
            if self.journal is not None:
                self.seen_intents.append(self.journal.in_flight()[-1].state)
            self.executed.append(action)
            if action in self.fail:
                return ActionReport(False, f"{action} failed")
            self.pid += 100
        return ActionReport(True, f"{action}: pid {self.pid}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        self.restored.append(dict(state))
        return ActionReport(True, "restored")


@dataclass
class World:
    clock: FakeClock
    store: OxigraphStore
    book: IncidentBook
    flow: RepairFlow
    proc: Proc
    live: Any
    journal: Journal


PLAYBOOKS = {
    "restart-service": Pb("restart-service", (St("restart"),)),
    "drain-restart": Pb("drain-restart", (St("drain"), St("restart"))),
}


def make_world(
    tmp_path: Path, live: Any, store: OxigraphStore | None = None, clock: FakeClock | None = None
) -> World:
    clock = clock or FakeClock(1000.0)
    store = store or OxigraphStore(None)
    tmp_path.mkdir(parents=True, exist_ok=True)
    journal = Journal(tmp_path / "journal.sqlite")
    book = IncidentBook(
        Recorder(
            lambda t: store.add(INCIDENTS_GRAPH, t),
            lambda inc, v: records.set_status(store, inc, v),
        )
    )
    proc = Proc(journal)
    executors = {a: proc for a in proc.actions}
    flow = RepairFlow(
        clock=clock,
        book=book,
        healer=Healer(executors, clock),
        gate=SafetyGate(clock, backoff_initial=0.0),
        playbooks=lambda: PLAYBOOKS,
        live=live,
        emit=lambda kind, payload: None,
    )
    flow.use_journal(journal, executors)
    return World(clock, store, book, flow, proc, live, journal)


@pytest.fixture
def world(tmp_path: Path, fake_live: type) -> Iterator[World]:
    w = make_world(tmp_path, fake_live())
    yield w
    w.flow.close()


def open_incident(w: World, target: str, playbook: str = "restart-service") -> Incident:
    now = w.clock.now()
    inc = w.book.open(Diagnosis(f"d-{target}", "ServiceDown", target, "r", (), now, now), now)
    chosen = Candidate(playbook, target, 1.0, 0.9, "low", 1, 1.0, True, "ok")
    w.book.set_decision(inc, Decision(inc.id, chosen, (chosen,), "chosen"), now)
    return inc


def test_each_step_is_journaled_before_it_runs_and_closed_with_the_incident(
    world: World,
) -> None:
    inc = open_incident(world, "api", "drain-restart")
    world.flow.start(inc, world.clock.now())
    world.flow.tick(world.clock.now())
    world.flow.wait_idle()
    assert world.proc.executed == ["drain", "restart"]
    assert world.proc.seen_intents == [State.INTENT, State.INTENT]
    assert [(e.step, e.state) for e in world.journal.in_flight()] == [
        (1, State.DONE),
        (2, State.DONE),
    ]
    world.live.seen["api"] = world.clock.advance(1.0)
    world.flow.tick(world.clock.now())
    assert inc.status is Status.RESOLVED
    assert world.journal.in_flight() == []


def crash_mid_step(
    tmp_path: Path, live: Any, playbook: str = "restart-service"
) -> tuple[World, str]:
    """A first process journals the intent of step N and dies before recording the result."""
    first = make_world(tmp_path / "a", live)
    inc = open_incident(first, "api", playbook)
    first.book.set_status(inc, Status.HEALING)
    steps = PLAYBOOKS[playbook].steps
    for n, st in enumerate(steps, start=1):
        eid = first.journal.intent(
            incident=inc.id,
            target="api",
            playbook=playbook,
            step=n,
            action=st.action,
            params={},
            rollback_point={"running": False, "pid": 0},
            timeout=20.0,
            at=first.clock.now(),
        )
        if n < len(steps):
            first.journal.finish(eid, ok=True, at=first.clock.now())
    first.flow.close()
    return first, inc.id


def restart(tmp_path: Path, first: World, live: Any) -> World:
    second = make_world(tmp_path / "b", live, store=first.store, clock=first.clock)
    second.journal = Journal(first.journal.path)
    second.proc.journal = second.journal
    executors = {a: second.proc for a in second.proc.actions}
    second.flow.recover(second.journal, executors, first.store)
    return second


def test_a_step_whose_effect_is_visible_is_not_repeated(tmp_path: Path, fake_live: type) -> None:
    first, iid = crash_mid_step(tmp_path, fake_live())
    second = restart(tmp_path, first, fake_live())
    second.proc.pid = 4242  # the restart had happened: a new process runs
    inc = second.book.get(iid)
    assert inc is not None and inc.status.value == "healing"
    second.flow.tick(second.clock.advance(1.0))
    second.flow.wait_idle()
    assert second.proc.executed == [], "an applied step must not run twice"
    assert inc.status is Status.VERIFYING
    second.live.seen[inc.node] = second.clock.advance(1.0)
    second.flow.tick(second.clock.now())
    assert inc.status.value == "resolved"
    detail = records.incident_detail(second.store, iid)
    assert detail["status"] == "resolved"
    assert any("not repeated" in s["detail"] for s in detail["steps"])
    second.flow.close()


def test_a_step_not_applied_is_resumed_once_its_timeout_has_passed(
    tmp_path: Path, fake_live: type
) -> None:
    first, iid = crash_mid_step(tmp_path, fake_live(), "drain-restart")
    second = restart(tmp_path, first, fake_live())
    second.flow.tick(second.clock.advance(5.0))
    assert second.proc.executed == [], "within the step timeout the effect may still come"
    second.flow.tick(second.clock.advance(30.0))
    second.flow.wait_idle()
    assert second.proc.executed == ["restart"], "step 1 was done: only step 2 is resumed"
    inc = second.book.get(iid)
    assert inc is not None and inc.status is Status.VERIFYING
    states = [(e.step, e.state) for e in second.journal.entries(iid)]
    assert states == [(1, State.DONE), (2, State.SUPERSEDED), (2, State.DONE)]
    second.flow.close()


def test_a_failure_in_the_resumed_part_rolls_back_the_steps_done_before_the_crash(
    tmp_path: Path,
    fake_live: type,
) -> None:
    first, iid = crash_mid_step(tmp_path, fake_live(), "drain-restart")
    second = restart(tmp_path, first, fake_live())
    second.proc.fail.add("restart")
    second.flow.tick(second.clock.advance(60.0))
    second.flow.wait_idle()
    inc = second.book.get(iid)
    assert inc is not None and inc.status is Status.FAILED
    assert second.proc.restored, "step 1 (done before the crash) was restored"
    assert second.journal.in_flight() == []
    second.flow.close()


def test_entries_of_incidents_closed_before_the_crash_are_closed(
    tmp_path: Path, fake_live: type
) -> None:
    first, iid = crash_mid_step(tmp_path, fake_live())
    inc = first.book.get(iid)
    assert inc is not None
    first.book.set_status(inc, Status.RESOLVED)  # the record says closed, the journal not
    second = restart(tmp_path, first, fake_live())
    assert second.book.get(iid) is None
    assert second.journal.in_flight() == []
    second.flow.close()


def test_the_diagnosed_symptoms_are_the_signals_the_rules_used() -> None:
    from selfheal_kg.act.repairs import diagnosed_symptoms
    from selfheal_kg.incident import Incident
    from selfheal_kg.model import Diagnosis

    inc = Incident("i", "HighErrorRate", "co", 1.0, 1.0)
    inc.diagnoses.append(
        Diagnosis(
            "d1",
            "HighErrorRate",
            "co",
            "r",
            ({"id": "s1", "type": "signal"}, {"id": "health:co", "type": "health"}),
            1.0,
            1.0,
        )
    )
    inc.diagnoses.append(
        Diagnosis(
            "d2",
            "HighErrorRate",
            "fe",
            "r",
            ({"id": "s2", "type": "signal"}, {"id": "s1", "type": "signal"}),
            2.0,
            2.0,
        )
    )
    assert diagnosed_symptoms(inc) == ["s1", "s2"]


def test_a_prediction_is_not_a_symptom_to_wait_for() -> None:
    from selfheal_kg.act.repairs import diagnosed_symptoms
    from selfheal_kg.incident import Incident
    from selfheal_kg.model import Diagnosis

    inc = Incident("i", "ResourceExhaustion", "fe", 1.0, 1.0)
    facts = (
        {"id": "trend1", "type": "signal", "detector": "trend"},
        {"id": "z1", "type": "signal", "detector": "robust_z"},
    )
    inc.diagnoses.append(Diagnosis("d1", "ResourceExhaustion", "fe", "r", facts, 1.0, 1.0))
    assert diagnosed_symptoms(inc) == ["z1"]


def _symptomatic(w: World, target: str, signal: Signal) -> Incident:
    now = w.clock.now()
    facts = ({"id": signal.id, "type": "signal", "detector": "robust_z"},)
    diag = Diagnosis(f"d-{target}", "PoolExhaustion", target, "r", facts, now, now)
    inc = w.book.open(diag, now)
    w.book.add_signals(inc, [signal])
    chosen = Candidate("resize", target, 1.0, 0.9, "low", 1, 1.0, True, "ok")
    w.book.set_decision(inc, Decision(inc.id, chosen, (chosen,), "chosen"), now)
    return inc


@pytest.mark.parametrize("mitigation", [True, False])
def test_a_mitigation_is_verified_by_its_criteria_while_its_cause_remains(
    tmp_path: Path, fake_live: type, mitigation: bool
) -> None:
    """A resized pool: requests stop waiting (the criterion), the leak keeps the pool busy."""

    class Live(fake_live):  # type: ignore[misc, valid-type]
        def active_ids(self) -> set[str]:
            return {"util@1"}  # the pool's utilisation signal never clears

    w = make_world(tmp_path, Live())
    PLAYBOOKS["resize"] = Pb("resize", (St("restart"),), mitigation=mitigation)
    try:
        util = Signal("util@1", "inv|u", "inv", "db.client.connection.utilization", "robust_z",
                      1.0, "up", 999.0, 999.0, 0.9, 0.1)
        inc = _symptomatic(w, "inv", util)
        w.flow.start(inc, w.clock.now())
        w.flow.tick(w.clock.now())
        w.flow.wait_idle()
        assert w.proc.executed == ["restart"]
        w.live.seen["inv"] = w.clock.advance(1.0)
        for _ in range(40):
            w.flow.tick(w.clock.advance(1.0))
            if inc.status in (Status.RESOLVED, Status.FAILED):
                break
        if mitigation:
            assert inc.status is Status.RESOLVED
            assert inc.outcome is not None
            assert "mitigated, the cause remains" in inc.outcome.reason
            assert "db.client.connection.utilization" in inc.outcome.reason
        else:  # a repair must clear its symptoms: this one never does
            assert inc.status is Status.FAILED
    finally:
        del PLAYBOOKS["resize"]
        w.flow.close()


def test_more_load_after_a_repair_is_no_regression_but_more_latency_is(
    tmp_path: Path, fake_live: type
) -> None:
    """After a scale-out a new instance's request rate jumps: load, not a side effect."""

    class Live(fake_live):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.late: dict[str, tuple[str, float]] = {}  # id → (metric, onset)

        def opened_since(self, nodes: object, t: float, metrics: object = None,
                         until: float | None = None) -> list[str]:
            return sorted(i for i, (m, onset) in self.late.items()
                          if onset > t and (until is None or onset <= until)
                          and (metrics is None or m in metrics))  # type: ignore[operator]

    PLAYBOOKS["widen"] = Pb("widen", (St("restart"),))
    try:
        for metric, fails in (("http.server.request.rate", False),
                              ("http.server.duration.mean", True)):
            w = make_world(tmp_path / metric, Live())
            rate = Signal("rate@1", "inv|r", "inv", "http.server.request.rate", "robust_z",
                          1.0, "up", 999.0, 999.0, 40.0, 10.0)
            latency = Signal("lat@1", "inv|l", "inv", "http.server.duration.mean", "robust_z",
                             1.0, "up", 999.0, 999.0, 0.3, 0.03)
            inc = _symptomatic(w, "inv", rate)
            inc.diagnoses[0] = Diagnosis(
                "d-inv", "Overload", "inv", "r",
                ({"id": "rate@1", "type": "signal"}, {"id": "lat@1", "type": "signal"}),
                999.0, 999.0)
            w.book.add_signals(inc, [latency])
            inc.decision = Decision(inc.id, Candidate("widen", "inv", 1.0, 0.9, "low", 1, 1.0,
                                                      True, "ok"), (), "chosen")
            w.flow.start(inc, w.clock.now())
            w.flow.tick(w.clock.now())
            w.flow.wait_idle()
            # the new instance's own series opens a signal just after the repair and stays
            w.live.late["new@2"] = (metric, w.clock.now() + 0.5)
            w.live.seen["inv"] = w.clock.advance(1.0)
            for _ in range(10):
                w.flow.tick(w.clock.advance(1.0))
            assert inc.status is (Status.FAILED if fails else Status.RESOLVED), metric
            assert inc.outcome is not None
            assert ("regression after the repair: new@2" in inc.outcome.reason) is fails
            w.flow.close()
    finally:
        del PLAYBOOKS["widen"]
