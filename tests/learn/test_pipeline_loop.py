"""The learning loop closed through the real pipeline, on a controllable clock.

Real detector, tracker, rule engine (durable-rules, shipped rules), RCA, decision refined by
``LearningLoop``, IncidentBook on an OxigraphStore; the series source and the executors are
fakes. Two playbooks handle ServiceDown: ``flush-cache`` (cheaper, so preferred at first, but
it never brings the service back) and the shipped ``restart-service``. HighErrorRate has no
playbook here: a human fixes it twice, and the loop learns a draft pattern from that.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.heal import Healer
from selfheal_kg.clock import FakeClock
from selfheal_kg.decide.choose import History
from selfheal_kg.decide.playbook import load_playbooks
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.detect.registry import make_detector
from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.engine.to_graph import rule_triples
from selfheal_kg.incident import Incident, IncidentBook, Recorder, Status
from selfheal_kg.kg import records
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH
from selfheal_kg.kg.store import OxigraphStore
from selfheal_kg.learn.loop import LearningLoop
from selfheal_kg.learn.patterns import learned_patterns, list_patterns, promote, record_resolution
from selfheal_kg.learn.report import effectiveness
from selfheal_kg.learn.stats import history_for_decision
from selfheal_kg.model import DerivedPoint, FactValue, Outcome
from selfheal_kg.paths import shipped
from selfheal_kg.pipeline import Knowledge, Pipeline, Settings

EDGES = [("gateway", "checkout")]
KINDS = {"gateway": "Service", "checkout": "Service"}
TOPOLOGY = """\
@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .
@prefix svc: <https://w3id.org/selfheal-kg/id/service/> .
svc:gateway a shk:Service ; shk:serviceName "gateway" ; shk:calls svc:checkout .
svc:checkout a shk:Service ; shk:serviceName "checkout" .
"""
FLUSH = """\
id: flush-cache
name: Flush the service's cache
description: Cheap, and useless against a crashed process (the test's failing arm).
handles: [ServiceDown]
target_types: [Service]
risk: low
cost: 0.1
requires_approval: false
steps:
  - action: flush-cache
    params: {}
    timeout_seconds: 5
success:
  - metric: health
    condition: health == up
    deadline_seconds: 10
"""
GAP = 7200.0  # between episodes: longer than the recurrence window and the gate's window


@dataclass
class Sim:
    """The simulated system: checkout can crash or fail requests; fakes restart or flush it."""

    clock: FakeClock
    alive: bool = True
    errors: bool = False
    points: list[DerivedPoint] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)
    k: int = 0

    def drain(self) -> list[DerivedPoint]:
        out, self.points = self.points, []
        return out

    def last_seen(self) -> dict[str, float]:
        return dict(self.seen)

    def emit(self) -> None:
        t = self.clock.advance(1.0)
        self.k += 1
        for node in ("gateway", "checkout"):
            if node == "checkout" and not self.alive:
                continue
            bad = node == "checkout" and self.errors
            self._point(t, node, "http.server.request.rate", 20.0 + (self.k % 3) * 0.1)
            self._point(t, node, "http.server.error.ratio", 1.0 if bad else 0.0)

    def _point(self, t: float, node: str, metric: str, value: float) -> None:
        self.points.append(DerivedPoint(f"{node}|{metric}", node, metric, t, value))
        self.seen[node] = t


class FakeExecutor:
    """Runs ``action``; ``revives`` says whether it brings a crashed checkout back."""

    def __init__(self, sim: Sim, action: str, *, revives: bool) -> None:
        self.sim, self.revives = sim, revives
        self.actions = frozenset({action})
        self.ran: list[str] = []

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        return {}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        self.ran.append(target)
        if self.revives:
            self.sim.alive = True
        return ActionReport(True, f"{action} {target}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        return ActionReport(True, "nothing to restore")


@dataclass
class World:
    pipe: Pipeline
    sim: Sim
    loop: LearningLoop
    store: OxigraphStore
    loader: KnowledgeLoader
    reload: tuple[list[Path], Path]
    closed: list[Incident]

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.sim.emit()
            self.pipe.tick()
            self.pipe.wait_idle()

    def until_closed(self, limit: int = 60) -> Incident:
        before = len(self.closed)
        for _ in range(limit):
            self.tick()
            if len(self.closed) > before:
                return self.closed[-1]
        raise AssertionError("no incident closed")

    def crash(self) -> Incident:
        """Calm, checkout crashes, the pipeline repairs (or gives up), a human revives it."""
        self.sim.clock.advance(GAP)
        self.tick(15)
        self.sim.alive = False
        inc = self.until_closed()
        self.sim.alive = True  # an operator restarts it by hand if the playbook did not
        self.tick(5)
        return inc

    def error_burst(self) -> Incident:
        """Checkout answers with errors; no playbook: escalated; a human fixes the config."""
        self.sim.clock.advance(GAP)
        self.tick(15)
        self.sim.errors = True
        inc = self.until_closed()
        self.tick(3)
        self.sim.errors = False
        record_resolution(
            self.store, inc.id, root_cause_type="bad-config", playbook="config-rollback",
            note="rolled back the feature flag", by="alice", at=self.sim.clock.now(),
        )
        self.tick(5)
        return inc


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(1_000_000.0)
    store = OxigraphStore(None)
    pb_dir = tmp_path / "playbooks"
    pb_dir.mkdir()
    shutil.copy(shipped("playbooks") / "restart-service.yaml", pb_dir)
    (pb_dir / "flush-cache.yaml").write_text(FLUSH, encoding="utf-8")
    topo = tmp_path / "topology.ttl"
    topo.write_text(TOPOLOGY, encoding="utf-8")
    ruleset = load_rules(shipped("rules"))
    loader = KnowledgeLoader(store, shipped("ontology"))
    loader.load_all([topo], pb_dir, rules_triples=rule_triples(ruleset))
    engine = DurableRuleEngine(name="learning-loop-test")
    engine.load(ruleset)
    playbooks = load_playbooks(pb_dir)
    sim = Sim(clock)
    loop = LearningLoop(store, clock, np.random.default_rng(7), exploration=0.2)
    book = IncidentBook(Recorder(
        lambda t: store.add(INCIDENTS_GRAPH, t),
        lambda inc, v: records.set_status(store, inc, v),
    ))
    executors = {
        "restart": FakeExecutor(sim, "restart", revives=True),
        "flush-cache": FakeExecutor(sim, "flush-cache", revives=False),
    }
    pipe = Pipeline(
        clock=clock,
        series=sim,
        detector=make_detector(),
        tracker=SignalTracker(levels=loop.levels),
        engine=engine,
        knowledge=Knowledge(
            topology=lambda: (EDGES, KINDS),
            playbooks=lambda: playbooks,
            history=lambda: history_for_decision(store),
            refine=loop.refine,
        ),
        book=book,
        healer=Healer(executors, clock),
        settings=Settings(group_wait=2.0, stale_after=3.5),
    )
    closed: list[Incident] = []

    def on_outcome(kind: str, payload: dict[str, object]) -> None:
        if kind == "outcome":
            assert isinstance(payload["outcome"], Outcome)
            closed.append(payload["incident"])  # type: ignore[arg-type]

    pipe.listeners += [on_outcome, loop.on_event]
    yield World(pipe, sim, loop, store, loader, ([topo], pb_dir), closed)
    pipe.close()
    engine.close()


def chosen(inc: Incident) -> str | None:
    assert inc.decision is not None
    return inc.decision.chosen.playbook if inc.decision.chosen else None


def test_the_loop_learns_through_the_real_pipeline(world: World) -> None:
    # 1. A pattern without a playbook, twice: escalated, fixed by a human each time.
    first = world.error_burst()
    assert (first.pattern, first.status, chosen(first)) == ("HighErrorRate", Status.ESCALATED,
                                                            None)
    assert learned_patterns(world.store) == []  # the human fix came after the outcome
    second = world.error_burst()
    assert second.pattern == "HighErrorRate"
    # the second escalation's outcome event proposed a draft from the first human fix
    (draft,) = learned_patterns(world.store)
    assert (draft.status, draft.incidents) == ("draft", [first.id])

    # 2. ServiceDown four times: the cheap playbook fails twice, then the decision changes.
    expected = [
        ("flush-cache", Status.FAILED, {"flush-cache": History(0, 1)}),
        ("flush-cache", Status.FAILED, {"flush-cache": History(0, 2)}),
        ("restart-service", Status.RESOLVED,
         {"flush-cache": History(0, 2), "restart-service": History(1, 0)}),
        ("restart-service", Status.RESOLVED,
         {"flush-cache": History(0, 2), "restart-service": History(2, 0)}),
    ]
    crashes = []
    for playbook, status, rates in expected:
        inc = world.crash()
        crashes.append(inc)
        assert (inc.pattern, chosen(inc), inc.status) == ("ServiceDown", playbook, status)
        assert inc.decision is not None and "learning: arm (" in inc.decision.why
        history = history_for_decision(world.store)
        assert {pb: h for (pb, p), h in history.items() if p == "ServiceDown"} == rates
    # the first crash's outcome event grew the draft with the second human fix
    (draft,) = learned_patterns(world.store)
    assert draft.incidents == sorted([first.id, second.id])
    assert draft.root_cause_type == "bad-config" and draft.playbook == "config-rollback"
    assert {(s.metric, s.direction) for s in draft.symptoms} == {
        ("http.server.error.ratio", "up")}
    assert world.loop.last_error is None and world.loop.recurred == []

    # 3. A human promotes it; it survives a reload of the authored files.
    promote(world.store, draft.id, "bob", world.sim.clock.now())
    files, pb_dir = world.reload
    world.loader.load_all(files, pb_dir, rules_triples=rule_triples(load_rules(shipped("rules"))))
    (kept,) = learned_patterns(world.store)
    assert (kept.id, kept.status, len(kept.incidents)) == (draft.id, "active", 2)
    assert {p["id"]: p["status"] for p in list_patterns(world.store)}[draft.id] == "active"

    # 4. The report agrees with a hand count: 6 incidents, 4 trials, 2 worked, 4 steps run.
    report = effectiveness(world.store)
    overall = report["overall"]
    assert overall["incidents"] == 6
    assert overall["success_rate"] == 0.5  # 2 restarts worked of 4 trials
    assert overall["false_positive_rate"] == 0.0  # escalations were fixed by a human
    assert overall["recurrence_rate"] == 0.0
    assert overall["actions_per_incident"] == round(4 / 6, 6)
    by_playbook = {r["playbook"]: r for r in report["by_playbook"]}
    assert (by_playbook["flush-cache"]["incidents"], by_playbook["flush-cache"]["success_rate"]) \
        == (2, 0.0)
    assert (by_playbook["restart-service"]["incidents"],
            by_playbook["restart-service"]["success_rate"]) == (2, 1.0)
    by_pattern = {r["pattern"]: r for r in report["by_pattern"]}
    assert by_pattern["HighErrorRate"]["incidents"] == 2
    assert by_pattern["HighErrorRate"]["success_rate"] is None  # never tried
    assert by_pattern["ServiceDown"]["incidents"] == 4
    unhandled = {s["subject"] for s in report["suggestions"]
                 if s["kind"] == "pattern-without-playbook"}
    assert "HighErrorRate" in unhandled and "ServiceDown" not in unhandled
