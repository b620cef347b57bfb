"""The repair plan: callees before callers, independent incidents in parallel."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from rdflib import Literal

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.heal import Healer
from selfheal_kg.act.plan import PlanItem, build_plan, plan_step_triples
from selfheal_kg.act.repairs import RepairFlow
from selfheal_kg.act.safety import SafetyGate
from selfheal_kg.clock import FakeClock
from selfheal_kg.incident import Incident, IncidentBook, Recorder, Status
from selfheal_kg.kg import records
from selfheal_kg.kg.history import incident_iri
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH, SHK, SPARQL_PREFIXES
from selfheal_kg.kg.store import OxigraphStore
from selfheal_kg.model import Candidate, Decision, Diagnosis, FactValue

CHAIN = [("gateway", "checkout"), ("checkout", "inventory")]


def items(*targets: str) -> list[PlanItem]:
    return [PlanItem(f"inc-{t}", t, float(n)) for n, t in enumerate(targets)]


def test_a_chain_runs_callee_first() -> None:
    plan = build_plan(items("gateway", "checkout", "inventory"), CHAIN)
    assert plan.layers() == [["inc-inventory"], ["inc-checkout"], ["inc-gateway"]]
    assert plan.waits_for("inc-gateway") == {"inc-checkout", "inc-inventory"}
    assert [i.incident for i in plan.ready({"inc-inventory"})] == ["inc-checkout"]


def test_independent_incidents_share_a_wave() -> None:
    plan = build_plan(items("a", "b", "c"), [("a", "c"), ("b", "x")])
    assert plan.layers() == [["inc-b", "inc-c"], ["inc-a"]]


def test_a_call_cycle_is_broken_by_opening_time() -> None:
    plan = build_plan(items("a", "b"), [("a", "b"), ("b", "a")])
    assert plan.layers() == [["inc-a"], ["inc-b"]]


def test_plan_step_triples_name_order_and_waits() -> None:
    plan = build_plan(items("gateway", "inventory"), CHAIN)
    triples = plan_step_triples(plan, "inc-gateway")
    preds = {(p, o) for _, p, o in triples}
    assert (SHK.waitsFor, incident_iri("inc-inventory")) in preds
    assert any(p == SHK.planOrder and o == Literal(1) for p, o in preds)


@dataclass(frozen=True)
class St:
    action: str = "restart"
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
    id: str = "restart-service"
    steps: tuple[St, ...] = (St(),)
    rollback: tuple[St, ...] = ()
    success: tuple[Crit, ...] = (Crit(),)
    handles: tuple[str, ...] = ("ServiceDown",)
    risk: str = "low"
    cost: float = 1.0
    requires_approval: bool = False
    target_types: tuple[str, ...] = ("Service",)


class Gated:
    """An executor whose restarts block until the test releases the target; logs events."""

    actions = frozenset({"restart"})

    def __init__(self) -> None:
        self.events: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.cond = threading.Condition()

    def gate(self, target: str) -> threading.Event:
        with self.cond:
            return self.release.setdefault(target, threading.Event())

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        return {"running": False}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        with self.cond:
            self.events.append(f"start {target}")
            self.cond.notify_all()
        assert self.gate(target).wait(timeout=10), f"{target} never released"
        with self.cond:
            self.events.append(f"end {target}")
        return ActionReport(True, "restarted")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        return ActionReport(True, "nothing")

    def wait_started(self, *targets: str) -> None:
        with self.cond:
            ok = self.cond.wait_for(
                lambda: all(f"start {t}" in self.events for t in targets), timeout=10)
        assert ok, self.events


@pytest.fixture
def flow(fake_live: type) -> Iterator[tuple[RepairFlow, Gated, Any, FakeClock, OxigraphStore]]:
    clock, store, ex, live = FakeClock(1000.0), OxigraphStore(None), Gated(), fake_live()
    book = IncidentBook(Recorder(
        lambda t: store.add(INCIDENTS_GRAPH, t),
        lambda inc, v: records.set_status(store, inc, v),
    ))
    f = RepairFlow(
        clock=clock, book=book, healer=Healer({"restart": ex}, clock),
        gate=SafetyGate(clock, max_concurrent=4), playbooks=lambda: {"restart-service": Pb()},
        live=live, emit=lambda kind, payload: None, max_parallel=4,
    )
    f.order_by(lambda: [*CHAIN, ("web", "search")])
    yield f, ex, live, clock, store
    for e in ex.release.values():
        e.set()
    f.close()


def decided(f: RepairFlow, clock: FakeClock, target: str) -> Incident:
    now = clock.advance(0.1)
    inc = f.book.open(Diagnosis(f"d-{target}", "ServiceDown", target, "r", (), now, now), now)
    chosen = Candidate("restart-service", target, 1.0, 0.9, "low", 1, 1.0, True, "ok")
    f.book.set_decision(inc, Decision(inc.id, chosen, (chosen,), "chosen"), now)
    f.start(inc, now)
    return inc


def settle(f: RepairFlow, ex: Gated, live: Any, clock: FakeClock, target: str) -> None:
    """Let ``target``'s restart finish and report healthy, then tick."""
    ex.gate(target).set()
    f.wait_idle()
    live.seen[target] = clock.advance(1.0)
    f.tick(clock.now())


def test_a_chain_of_three_incidents_is_repaired_callee_first(flow: tuple) -> None:  # type: ignore[type-arg]
    f, ex, live, clock, store = flow
    incs = {t: decided(f, clock, t) for t in ("gateway", "checkout", "inventory")}
    f.tick(clock.now())
    ex.wait_started("inventory")
    assert incs["gateway"].status is Status.OPEN and incs["checkout"].status is Status.OPEN
    settle(f, ex, live, clock, "inventory")
    assert incs["inventory"].status is Status.RESOLVED
    f.tick(clock.now())
    settle(f, ex, live, clock, "checkout")
    f.tick(clock.now())
    settle(f, ex, live, clock, "gateway")
    assert ex.events == ["start inventory", "end inventory", "start checkout", "end checkout",
                         "start gateway", "end gateway"]
    assert all(i.status is Status.RESOLVED for i in incs.values())
    gid = incs["gateway"].id
    rows = store.query(SPARQL_PREFIXES + f"""SELECT ?order ?other WHERE {{
        ?i shk:incidentId "{gid}" ; shk:hasPlanStep ?ps . ?ps shk:planOrder ?order ;
        shk:waitsFor/shk:incidentId ?other }}""").dicts()
    assert {str(r["other"]) for r in rows} == {incs["checkout"].id, incs["inventory"].id}
    assert {int(r["order"]) for r in rows} == {2}


def test_two_independent_incidents_are_repaired_in_parallel(flow: tuple) -> None:  # type: ignore[type-arg]
    f, ex, live, clock, _ = flow
    a, b = decided(f, clock, "inventory"), decided(f, clock, "search")
    f.tick(clock.now())
    ex.wait_started("inventory", "search")  # both in flight before either is released
    assert {a.status, b.status} == {Status.HEALING}
    ex.gate("search").set()
    settle(f, ex, live, clock, "inventory")
    live.seen["search"] = clock.advance(1.0)
    f.tick(clock.now())
    assert sorted(ex.events[:2]) == ["start inventory", "start search"]
    assert a.status is Status.RESOLVED and b.status is Status.RESOLVED
