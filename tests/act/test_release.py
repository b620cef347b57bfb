"""Temporary repairs: a verified scale-out is held, and put back once the load has fallen.

The replica executor here is a fake (a counter): the real one (the demo's ReplicaScaler over
real processes) is exercised by the demo's end-to-end overload test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rdflib import URIRef

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.heal import Healer
from selfheal_kg.act.journal import Journal
from selfheal_kg.act.release import BEFORE_WINDOW, LEVEL_WINDOW
from selfheal_kg.act.repairs import RepairFlow
from selfheal_kg.act.safety import Permit, SafetyGate
from selfheal_kg.clock import FakeClock
from selfheal_kg.incident import Incident, IncidentBook, Recorder, Status
from selfheal_kg.kg import records
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH
from selfheal_kg.kg.store import OxigraphStore, SelectResult
from selfheal_kg.model import Candidate, Decision, Diagnosis, FactValue

RATE = "http.server.request.rate"


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
class Rel:
    metric: str = RATE
    at_most: float = 1.25
    stable_seconds: float = 30.0
    undo: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pb:
    id: str
    steps: tuple[St, ...]
    release: Rel | None = Rel()
    rollback: tuple[St, ...] = ()
    success: tuple[Crit, ...] = (Crit(),)
    handles: tuple[str, ...] = ("Overload",)
    risk: str = "medium"
    cost: float = 1.0
    requires_approval: bool = False
    target_types: tuple[str, ...] = ("Service",)
    mitigation: bool = False


class Scaler:
    """A fake replica executor: a count per target; ``fail_restore`` makes restores fail.

    ``drain`` stands for any other change of a recovery chain (a weight, a breaker).
    """

    actions = frozenset({"scale_out", "drain"})

    def __init__(self) -> None:
        self.replicas: dict[str, int] = {}
        self.fail_restore = False
        self.drained = False

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        if action == "drain":
            return {"drained": self.drained}
        return {"replicas": self.replicas.get(target, 2)}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        if action == "drain":
            self.drained = True
            return ActionReport(True, f"{target}: drained")
        self.replicas[target] = self.replicas.get(target, 2) + int(str(params["increment"]))
        return ActionReport(True, f"{target}: {self.replicas[target]} replicas")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        if self.fail_restore:
            return ActionReport(False, "the balancer did not answer")
        if "drained" in state:
            self.drained = bool(state["drained"])
            return ActionReport(True, f"{target}: drained {self.drained}")
        self.replicas[target] = int(str(state["replicas"]))
        return ActionReport(True, f"{target}: back to {state['replicas']} replicas")


class Levels:
    """The request rate of each node: ``before`` until ``change_at``, then ``now``."""

    def __init__(self, before: float | None, change_at: float) -> None:
        self.before = before
        self.now = 80.0
        self.change_at = change_at
        self.asked: list[tuple[str, str, float, float]] = []

    def __call__(self, node: str, metric: str, start: float, end: float) -> float | None:
        self.asked.append((node, metric, start, end))
        return self.before if end <= self.change_at else self.now


class Live:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def seen_since(self, node: str, t: float) -> bool:
        return self.seen.get(node, float("-inf")) > t

    def signal_active(self, node: str, metric: str) -> bool:
        return False

    def active_ids(self) -> set[str]:
        return set()

    def opened_since(self, nodes: object, t: float, metrics: object = None,
                     until: float | None = None) -> list[str]:
        return []


@dataclass
class World:
    clock: FakeClock
    store: OxigraphStore
    book: IncidentBook
    flow: RepairFlow
    scaler: Scaler
    levels: Levels
    live: Live
    gate: SafetyGate
    events: list[tuple[str, dict[str, object]]]


PLAYBOOKS: dict[str, Any] = {
    "scale": Pb("scale", (St("scale_out", {"increment": 3}),)),
    "recover": Pb("recover", (St("drain"), St("scale_out", {"increment": 1})),
                  release=Rel(undo=("scale_out",))),
    "scale-forever": Pb("scale-forever", (St("scale_out", {"increment": 1}),), release=None),
}


def make_world(
    before: float | None = 20.0,
    dry_run: bool = False,
    *,
    store: OxigraphStore | None = None,
    scaler: Scaler | None = None,
    start: float = 1000.0,
    journal: Journal | None = None,
) -> World:
    """A repair flow over a fake scaler; pass ``store``, ``scaler`` and ``journal`` of an
    earlier world to start it again as after a restart (the live system keeps its state)."""
    clock = FakeClock(start)
    store = OxigraphStore(None) if store is None else store
    book = IncidentBook(Recorder(
        lambda t: store.add(INCIDENTS_GRAPH, t),
        lambda inc, v: records.set_status(store, inc, v),
    ))
    scaler = Scaler() if scaler is None else scaler
    levels = Levels(before, change_at=clock.now())
    live = Live()
    gate = SafetyGate(clock, backoff_initial=10.0)
    events: list[tuple[str, dict[str, object]]] = []
    flow = RepairFlow(
        clock=clock, book=book, gate=gate,
        healer=Healer({"scale_out": scaler, "drain": scaler}, clock),
        playbooks=lambda: PLAYBOOKS, live=live, emit=lambda k, p: events.append((k, p)),
        dry_run=dry_run, level=levels,
    )
    if journal is not None:
        flow.recover(journal, {"scale_out": scaler, "drain": scaler}, store)
    return World(clock, store, book, flow, scaler, levels, live, gate, events)


@pytest.fixture
def world() -> Iterator[World]:
    w = make_world()
    yield w
    w.flow.close()


def heal(w: World, target: str = "checkout", playbook: str = "scale") -> Incident:
    """Open an Overload incident on ``target``, run its repair and verify it."""
    now = w.clock.now()
    inc = w.book.open(Diagnosis(f"d-{target}", "Overload", target, "overload", (), now, now), now)
    chosen = Candidate(playbook, target, 1.0, 0.9, "medium", 1, 1.0, True, "ok")
    w.book.set_decision(inc, Decision(inc.id, chosen, (chosen,), "chosen"), now)
    w.flow.start(inc, now)
    w.flow.tick(w.clock.advance(1.0))
    w.flow.wait_idle()
    w.live.seen[target] = w.clock.advance(1.0)
    w.flow.tick(w.clock.now())
    assert inc.status is Status.RESOLVED
    return inc


def run(w: World, seconds: float, step: float = 1.0) -> None:
    """Tick every ``step`` seconds for ``seconds``, letting started work finish."""
    end = w.clock.now() + seconds
    while w.clock.now() < end:
        w.flow.tick(w.clock.advance(step))
        w.flow.wait_idle()


def select(w: World, query: str) -> list[dict[str, Any]]:
    result = w.store.query(query)
    assert isinstance(result, SelectResult)
    return result.dicts()


def release_record(w: World, inc: Incident) -> dict[str, Any]:
    rows = select(w,
        f"""PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>
        SELECT ?p ?o WHERE {{ GRAPH <{INCIDENTS_GRAPH}> {{
          <{URIRef('https://w3id.org/selfheal-kg/id/incident/' + inc.id)}> shk:hasRelease ?r .
          ?r ?p ?o }} }}"""
    )
    return {str(r["p"]).rsplit("#", 1)[-1]: r["o"] for r in rows}


def test_the_scale_out_is_held_while_the_load_stays_high(world: World) -> None:
    inc = heal(world)
    assert world.scaler.replicas["checkout"] == 5
    held = world.flow.releases.pending("checkout")
    assert len(held) == 1 and held[0].before == 20.0 and held[0].threshold == 25.0
    node, metric, start, end = world.levels.asked[0]
    assert (node, metric, end - start) == ("checkout", RATE, BEFORE_WINDOW)
    assert end == inc.onset, "the level before is read up to the incident's onset"
    run(world, 120)
    assert world.scaler.replicas["checkout"] == 5
    assert "releasedAt" not in release_record(world, inc)


def test_the_scale_out_is_put_back_once_the_load_has_stayed_low_for_the_stable_time(
    world: World,
) -> None:
    inc = heal(world)
    world.levels.now = 24.0  # within 1.25 x 20
    run(world, 29)
    assert world.scaler.replicas["checkout"] == 5, "not before the stable time has passed"
    run(world, 2)
    assert world.scaler.replicas["checkout"] == 2
    assert world.flow.releases.pending() == []
    released = [s for s in inc.steps if s.action == "restore:scale_out"]
    assert len(released) == 1 and released[0].ok and released[0].params == {"replicas": 2}
    rec = release_record(world, inc)
    assert float(rec["levelBefore"]) == 20.0 and float(rec["threshold"]) == 25.0
    assert float(rec["levelAtRelease"]) == 24.0 and rec["succeeded"] is True
    assert "<= 1.25 x 20" in rec["reason"]
    phases = select(world,
        f"""PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>
        SELECT ?a WHERE {{ GRAPH <{INCIDENTS_GRAPH}> {{
          ?e shk:phase "release" ; shk:action ?a }} }}"""
    )
    assert [str(r["a"]) for r in phases] == ["restore:scale_out"]
    kinds = [k for k, _ in world.events]
    assert kinds.index("hold") < kinds.index("releasing") < kinds.index("release")
    # whoever sees the outcome sees the hold already
    assert kinds.index("hold") < kinds.index("outcome")


def test_a_rise_of_the_load_starts_the_calm_again(world: World) -> None:
    heal(world)
    world.levels.now = 24.0
    run(world, 20)
    world.levels.now = 26.0  # one level above the threshold
    run(world, 1)
    world.levels.now = 24.0
    run(world, 29)
    assert world.scaler.replicas["checkout"] == 5
    run(world, 2)
    assert world.scaler.replicas["checkout"] == 2


def test_nothing_is_put_back_while_an_incident_involves_the_target(world: World) -> None:
    heal(world)
    world.levels.now = 10.0
    now = world.clock.now()
    other = world.book.open(Diagnosis("d-2", "HighLatency", "checkout", "r", (), now, now), now)
    run(world, 60)
    assert world.scaler.replicas["checkout"] == 5
    world.book.close(other, _outcome(other.id), world.clock.now(), Status.ESCALATED)
    run(world, 31)
    assert world.scaler.replicas["checkout"] == 2


def test_a_target_being_healed_is_not_released_until_its_lock_is_free(world: World) -> None:
    heal(world)
    world.levels.now = 10.0
    world.clock.advance(15.0)  # past the backoff of the scale-out: another healing starts
    permit = world.gate.acquire("checkout")
    assert isinstance(permit, Permit)
    run(world, 60)
    assert world.scaler.replicas["checkout"] == 5
    world.gate.release(permit, success=True)
    run(world, 2)
    assert world.scaler.replicas["checkout"] == 2


def test_the_release_spends_no_budget_and_leaves_the_backoff_alone(world: World) -> None:
    heal(world)
    world.levels.now = 10.0
    run(world, 31)
    assert world.scaler.replicas["checkout"] == 2
    # one real attempt so far (the scale-out): two more fit the default budget of three
    assert isinstance(world.gate.acquire("checkout"), Permit)


def test_the_newest_hold_of_a_target_is_released_first(world: World) -> None:
    first = heal(world)
    world.levels.change_at = world.clock.now() + 1.0  # the second incident starts from 80
    world.clock.advance(30.0)  # past the backoff of the first scale-out
    second = heal(world)
    assert world.scaler.replicas["checkout"] == 8
    holds = world.flow.releases.pending("checkout")
    assert [h.incident for h in holds] == [first, second]
    assert holds[1].before == 80.0 and holds[1].threshold == 100.0
    world.levels.now = 90.0  # below the second's threshold only
    run(world, 40)
    assert world.scaler.replicas["checkout"] == 5
    assert [h.incident for h in world.flow.releases.pending()] == [first]
    world.levels.now = 20.0
    run(world, 40)
    assert world.scaler.replicas["checkout"] == 2


def test_a_failed_restore_is_recorded_and_not_repeated(world: World) -> None:
    inc = heal(world)
    world.scaler.fail_restore = True
    world.levels.now = 10.0
    run(world, 31)
    rec = release_record(world, inc)
    assert rec["succeeded"] is False and "the balancer did not answer" in rec["reason"]
    assert world.flow.releases.pending() == []
    restores = len([s for s in inc.steps if s.action == "restore:scale_out"])
    run(world, 60)
    assert len([s for s in inc.steps if s.action == "restore:scale_out"]) == restores == 1


def test_without_a_level_before_the_incident_the_change_stays_and_the_record_says_why() -> None:
    w = make_world(before=None)
    try:
        inc = heal(w)
        assert w.flow.releases.pending() == []
        rec = release_record(w, inc)
        assert "no level of http.server.request.rate on checkout" in rec["reason"]
        assert "releasedAt" not in rec
    finally:
        w.flow.close()


def test_a_release_puts_back_only_the_actions_it_undoes(world: World) -> None:
    inc = heal(world, playbook="recover")
    assert world.scaler.drained and world.scaler.replicas["checkout"] == 3
    world.levels.now = 20.0
    run(world, 31)
    assert world.scaler.replicas["checkout"] == 2, "the spare replica is retired"
    assert world.scaler.drained, "the other change of the chain stays"
    assert [s.action for s in inc.steps if s.action.startswith("restore:")] == [
        "restore:scale_out"]


def test_a_playbook_without_a_release_condition_is_not_held(world: World) -> None:
    inc = heal(world, playbook="scale-forever")
    world.levels.now = 1.0
    run(world, 60)
    assert world.scaler.replicas["checkout"] == 3
    assert release_record(world, inc) == {}


def test_a_dry_run_holds_nothing() -> None:
    w = make_world(dry_run=True)
    try:
        now = w.clock.now()
        inc = w.book.open(Diagnosis("d", "Overload", "checkout", "overload", (), now, now), now)
        chosen = Candidate("scale", "checkout", 1.0, 0.9, "medium", 1, 1.0, True, "ok")
        w.book.set_decision(inc, Decision(inc.id, chosen, (chosen,), "chosen"), now)
        w.flow.start(inc, now)
        run(w, 5)
        assert inc.status is Status.RESOLVED and w.flow.releases.pending() == []
        assert "checkout" not in w.scaler.replicas
    finally:
        w.flow.close()


def test_the_level_now_is_read_over_the_last_window(world: World) -> None:
    heal(world)
    world.levels.asked.clear()
    run(world, 1)
    node, metric, start, end = world.levels.asked[-1]
    assert (node, metric) == ("checkout", RATE)
    assert end - start == pytest.approx(LEVEL_WINDOW)
    assert start == pytest.approx(world.clock.now() - LEVEL_WINDOW)


def restarted(w: World, journal: Journal, before: float | None = 20.0) -> World:
    """Start the repair flow again over the same record, journal and live system."""
    w.flow.close()
    return make_world(before, store=w.store, scaler=w.scaler,
                      start=w.clock.now() + 5.0, journal=journal)


def test_a_hold_survives_a_restart_and_is_released_after_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "store.journal")
    w = make_world(journal=journal)
    inc = heal(w)
    assert w.scaler.replicas["checkout"] == 5
    again = restarted(w, journal)
    try:
        held = again.flow.releases.pending("checkout")
        assert len(held) == 1, "the hold is rebuilt from the record and the journal"
        h = held[0]
        assert (h.incident.id, h.metric, h.before, h.threshold, h.stable_seconds) == (
            inc.id, RATE, 20.0, 25.0, 30.0)
        assert [(c.action, c.rollback_point) for c in h.changes] == [
            ("scale_out", {"replicas": 2})]
        run(again, 60)  # the load is still high after the restart
        assert again.scaler.replicas["checkout"] == 5
        again.levels.now = 24.0
        run(again, 29)
        assert again.scaler.replicas["checkout"] == 5, "the calm is watched from the restart"
        run(again, 2)
        assert again.scaler.replicas["checkout"] == 2
        rec = release_record(again, inc)
        assert rec["succeeded"] is True and float(rec["levelBefore"]) == 20.0
    finally:
        again.flow.close()
    # released holds are not watched again after a further restart
    third = restarted(again, journal)
    try:
        assert third.flow.releases.pending() == []
    finally:
        third.flow.close()
        journal.close()


def test_a_restored_hold_puts_back_only_the_actions_it_undoes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "store.journal")
    w = make_world(journal=journal)
    heal(w, playbook="recover")
    again = restarted(w, journal)
    try:
        [h] = again.flow.releases.pending()
        assert [c.action for c in h.changes] == ["scale_out"]
        again.levels.now = 20.0
        run(again, 31)
        assert again.scaler.replicas["checkout"] == 2 and again.scaler.drained
    finally:
        again.flow.close()
        journal.close()


def test_a_hold_whose_playbook_lost_its_release_stays_as_it_is(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "store.journal")
    w = make_world(journal=journal)
    heal(w)
    PLAYBOOKS["scale"] = Pb("scale", (St("scale_out", {"increment": 3}),), release=None)
    try:
        again = restarted(w, journal)
        run(again, 60)
        assert again.flow.releases.pending() == [] and again.scaler.replicas["checkout"] == 5
        again.flow.close()
    finally:
        PLAYBOOKS["scale"] = Pb("scale", (St("scale_out", {"increment": 3}),))
        journal.close()


def _outcome(incident_id: str) -> Any:
    from selfheal_kg.model import Outcome

    return Outcome(incident_id, False, None, "escalated by the test")
