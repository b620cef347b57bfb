"""The pipeline: one tick moves data one way through every layer.

::

    series.drain() ─► detector ─► tracker ─► Signal ─┐
    series.last_seen() ─► liveness ─► health change ─┴► facts ─► rule engine ─► Diagnosis
        ─► incident book (open / group) ─► [group wait] ─► RCA ─► decision ─► healer (worker)
        ─► verification on live signals ─► outcome

Each stage is a method that takes the previous stage's values; every stage records what it
did in the incidents graph through the incident book.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import networkx as nx
import numpy as np

from selfheal_kg.act.heal import Healer, StepLike
from selfheal_kg.act.verify import CriterionLike, verify
from selfheal_kg.clock import Clock
from selfheal_kg.decide.choose import History, PlaybookLike, choose
from selfheal_kg.incident import Incident, IncidentBook, Status
from selfheal_kg.model import Diagnosis, DerivedPoint, Fact, Firing, Outcome, RootCause, Signal
from selfheal_kg.monitor.liveness import HealthChange, Liveness
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.rank import Anomaly, rank


class SeriesSource(Protocol):
    """What the pipeline reads of the series store."""

    def drain(self) -> list[DerivedPoint]: ...
    def last_seen(self) -> dict[str, float]: ...


class DetectorLike(Protocol):
    """A vectorised streaming detector."""

    name: str

    def update(self, t: float, series: Sequence[str], values: np.ndarray) -> object: ...


class TrackerLike(Protocol):
    """Hysteresis over detector scores."""

    def update(
        self,
        t: float,
        series: Sequence[str],
        nodes: Sequence[str],
        metrics: Sequence[str],
        scores: object,
        values: np.ndarray,
    ) -> tuple[list[Signal], list[Signal]]: ...


class EngineLike(Protocol):
    """The rule engine port, as far as the pipeline uses it."""

    def assert_fact(self, fact: Fact) -> list[Firing]: ...
    def retract_fact(self, fact_id: str) -> list[Firing]: ...
    def advance(self, now: float) -> list[Firing]: ...


class PlaybookFull(PlaybookLike, Protocol):
    """A playbook with steps and success criteria."""

    @property
    def steps(self) -> Sequence[StepLike]: ...
    @property
    def success(self) -> Sequence[CriterionLike]: ...


Topology = tuple[Sequence[tuple[str, str]], Mapping[str, str]]


@dataclass
class Knowledge:
    """Read-side providers of what the knowledge graph holds (refreshed on reload)."""

    topology: Callable[[], Topology]
    playbooks: Callable[[], Mapping[str, PlaybookFull]]
    history: Callable[[], Mapping[tuple[str, str], History]]


@dataclass(frozen=True, slots=True)
class Settings:
    """Pipeline timings and switches."""

    group_wait: float = 2.0
    stale_after: float = 3.5
    dry_run: bool = False
    max_parallel: int = 4


@dataclass
class TickReport:
    """What one tick did (for the CLI, the demo and tests)."""

    now: float
    opened: list[Signal] = field(default_factory=list)
    cleared: list[Signal] = field(default_factory=list)
    health: list[HealthChange] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Pipeline:
    """Runs one tick at a time; healing runs on worker threads, one per target."""

    def __init__(
        self,
        *,
        clock: Clock,
        series: SeriesSource,
        detector: DetectorLike,
        tracker: TrackerLike,
        engine: EngineLike,
        knowledge: Knowledge,
        book: IncidentBook,
        healer: Healer,
        settings: Settings,
    ) -> None:
        self.clock = clock
        self.series = series
        self.detector = detector
        self.tracker = tracker
        self.engine = engine
        self.knowledge = knowledge
        self.book = book
        self.healer = healer
        self.settings = settings
        self.liveness = Liveness(settings.stale_after)
        self.active: dict[str, Signal] = {}
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=settings.max_parallel)
        self._futures: list[Future[None]] = []
        self.listeners: list[Callable[[str, dict[str, object]], None]] = []

    # -- stages -------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Run every stage once at the clock's current time."""
        with self._lock:
            now = self.clock.now()
            report = TickReport(now=now)
            report.opened, report.cleared = self._detect(now)
            report.health = self.liveness.update(self.series.last_seen(), now)
            firings = self._facts(now, report)
            report.diagnoses = self._diagnoses(firings, now)
            self._group(report.diagnoses, now)
            self._decide_ready(now)
            self._verify(now)
            return report

    def _detect(self, now: float) -> tuple[list[Signal], list[Signal]]:
        latest: dict[str, DerivedPoint] = {}
        for p in self.series.drain():
            latest[p.series] = p
        if not latest:
            return [], []
        pts = list(latest.values())
        ids = [p.series for p in pts]
        values = np.array([p.value for p in pts], dtype=float)
        scores = self.detector.update(now, ids, values)
        opened, cleared = self.tracker.update(
            now, ids, [p.node for p in pts], [p.metric for p in pts], scores, values
        )
        for s in opened:
            self.active[s.id] = s
            self._emit("signal", {"signal": s})
        for s in cleared:
            self.active.pop(s.id, None)
            self._emit("cleared", {"signal": s})
        return opened, cleared

    def _facts(self, now: float, report: TickReport) -> list[Firing]:
        firings: list[Firing] = []
        for s in report.opened:
            attrs = {
                "node": s.node,
                "metric": s.metric,
                "detector": s.detector,
                "direction": s.direction,
                "score": float(s.score),
                "onset": float(s.onset),
            }
            firings += self.engine.assert_fact(Fact(s.id, "signal", attrs, now))
        for s in report.cleared:
            firings += self.engine.retract_fact(s.id)
        for h in report.health:
            fid = f"health:{h.node}"
            self._emit("health", {"change": h})
            if h.status == "down":
                attrs = {"node": h.node, "status": "down", "source": "telemetry", "onset": h.since}
                firings += self.engine.assert_fact(Fact(fid, "health", attrs, now))
            else:
                firings += self.engine.retract_fact(fid)
        firings += self.engine.advance(now)
        return firings

    def _diagnoses(self, firings: list[Firing], now: float) -> list[Diagnosis]:
        out = []
        for f in firings:
            if f.action != "diagnose":
                continue
            node = str(f.params.get("node", ""))
            onsets = [float(x["onset"]) for x in f.facts if isinstance(x.get("onset"), int | float)]
            d = Diagnosis(
                id=f"{f.rule}:{node}:{int(now * 1000)}",
                pattern=str(f.params.get("pattern", "")),
                node=node,
                rule=f.rule,
                facts=f.facts,
                at=now,
                onset=min(onsets, default=now),
            )
            out.append(d)
            self._emit("diagnosis", {"diagnosis": d})
        return out

    def _group(self, diagnoses: list[Diagnosis], now: float) -> None:
        graph = self._graph()
        for d in diagnoses:
            related = {d.node} | _near(graph, d.node)
            inc = self.book.find_for(related)
            if inc is None:
                inc = self.book.open(d, now)
                self._emit("incident", {"incident": inc})
            else:
                self.book.attach(inc, d)
            self.book.add_signals(inc, [s for s in self.active.values() if s.node in inc.nodes])

    def _decide_ready(self, now: float) -> None:
        for inc in self.book.open_incidents():
            if inc.status is Status.OPEN and now - inc.opened >= self.settings.group_wait:
                self._decide(inc, now)

    def _decide(self, inc: Incident, now: float) -> None:
        edges, kinds = self.knowledge.topology()
        snapshot = TopologySnapshot.from_edges(edges, kinds)
        anomalies = self._anomalies()
        # Hidden roots are inferred only behind nodes that report; nothing can be inferred
        # about the dependencies of a node that is down (it makes no calls at all).
        observed = set(self.series.last_seen())
        for node in self.liveness.down():
            observed |= set(snapshot.graph.successors(node)) if node in snapshot.graph else set()
        causes = rank(snapshot, anomalies, target=inc.node, top=5, observed=observed)
        own = [c for c in causes if c.node in inc.nodes or _reaches(snapshot.graph, inc.node, c.node)]
        causes = _renumber(own or causes)
        self.book.set_root_causes(inc, causes)
        self.book.add_signals(inc, [s for s in self.active.values() if s.node in inc.nodes])
        self._emit("rca", {"incident": inc, "causes": causes})
        target = inc.root
        pattern = inc.pattern_at(target)
        playbooks = self.knowledge.playbooks()
        decision = choose(
            inc.id,
            pattern,
            target,
            kinds.get(target, "Service"),
            list(playbooks.values()),
            snapshot.graph,
            self.knowledge.history(),
        )
        self.book.set_decision(inc, decision, now)
        self._emit("decision", {"incident": inc, "decision": decision})
        if decision.chosen is None:
            outcome = Outcome(inc.id, False, None, decision.why)
            self.book.close(inc, outcome, now, Status.ESCALATED)
            self._emit("outcome", {"incident": inc, "outcome": outcome})
            return
        if decision.needs_approval:
            self.book.set_status(inc, Status.AWAITING_APPROVAL)
            return
        self._start_healing(inc, playbooks[decision.chosen.playbook], target)

    def _start_healing(self, inc: Incident, pb: PlaybookFull, target: str) -> None:
        if target in self._busy:
            return
        self._busy.add(target)
        self.book.set_status(inc, Status.HEALING)
        self._futures.append(self._pool.submit(self._heal, inc, pb, target))

    def _heal(self, inc: Incident, pb: PlaybookFull, target: str) -> None:
        def on_step(result: object, phase: str) -> None:
            from selfheal_kg.model import StepResult

            assert isinstance(result, StepResult)
            self.book.add_step(inc, result, phase)
            self._emit("step", {"incident": inc, "step": result, "phase": phase})

        try:
            run = self.healer.run(pb.steps, target, on_step, dry_run=self.settings.dry_run)
        finally:
            self._busy.discard(target)
        now = self.clock.now()
        inc.repaired_at = now
        if not run.ok:
            outcome = Outcome(inc.id, False, None, "a repair step failed; rolled back")
            self.book.close(inc, outcome, now, Status.FAILED)
            self._emit("outcome", {"incident": inc, "outcome": outcome})
            return
        self.book.set_status(inc, Status.VERIFYING)

    def _verify(self, now: float) -> None:
        playbooks = self.knowledge.playbooks()
        for inc in self.book.open_incidents():
            if inc.status is not Status.VERIFYING or inc.decision is None:
                continue
            chosen = inc.decision.chosen
            pb = playbooks.get(chosen.playbook) if chosen else None
            since = inc.repaired_at or now
            if pb is None or self.settings.dry_run:
                outcome = Outcome(inc.id, True, None, "dry run: nothing executed, nothing verified")
                self.book.close(inc, outcome, now, Status.RESOLVED)
                self._emit("outcome", {"incident": inc, "outcome": outcome})
                continue
            verdict = verify(pb.success, inc.root, since, now, self)
            if verdict.passed:
                outcome = Outcome(inc.id, True, now, f"verified: {verdict.detail}")
                self.book.close(inc, outcome, now, Status.RESOLVED)
            elif verdict.expired:
                outcome = Outcome(inc.id, False, None, f"verification failed: {verdict.detail}")
                self.book.close(inc, outcome, now, Status.FAILED)
            else:
                continue
            self._emit("outcome", {"incident": inc, "outcome": outcome})

    # -- live view for verification -----------------------------------------------------

    def seen_since(self, node: str, t: float) -> bool:
        """Whether ``node`` sent telemetry after ``t`` (LiveView)."""
        return self.liveness.seen_since(node, t)

    def signal_active(self, node: str, metric: str) -> bool:
        """Whether a signal on ``metric`` is active for ``node`` (LiveView)."""
        return any(s.node == node and s.metric == metric for s in self.active.values())

    # -- helpers ------------------------------------------------------------------------

    def _anomalies(self) -> dict[str, Anomaly]:
        out: dict[str, Anomaly] = {}
        for s in self.active.values():
            prev = out.get(s.node)
            ev = (*prev.evidence, s.id) if prev else (s.id,)
            out[s.node] = Anomaly(
                node=s.node,
                score=max(s.score, prev.score if prev else 0.0),
                onset=min(s.onset, prev.onset if prev else s.onset),
                evidence=ev,
                kinds=(*(prev.kinds if prev else ()), s.metric),
            )
        for node, since in self.liveness.down().items():
            prev = out.get(node)
            out[node] = Anomaly(
                node=node,
                score=1.0,
                onset=min(since, prev.onset) if prev else since,
                evidence=(*(prev.evidence if prev else ()), f"health:{node}"),
                kinds=(*(prev.kinds if prev else ()), "health.down"),
            )
        return out

    def _graph(self) -> nx.DiGraph:
        edges, kinds = self.knowledge.topology()
        return TopologySnapshot.from_edges(edges, kinds).graph

    def _emit(self, kind: str, payload: dict[str, object]) -> None:
        for listener in list(self.listeners):
            listener(kind, payload)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for the healing workers started so far (tests, shutdown)."""
        for f in list(self._futures):
            f.result(timeout=timeout)
        self._futures = [f for f in self._futures if not f.done()]

    def close(self) -> None:
        """Stop the workers after the running steps finish."""
        self._pool.shutdown(wait=True)


def _near(graph: nx.DiGraph, node: str) -> set[str]:
    """Return the nodes a fault at or below ``node`` could involve: its dependencies and callers."""
    if node not in graph:
        return set()
    return set(nx.descendants(graph, node)) | set(nx.ancestors(graph, node))


def _reaches(graph: nx.DiGraph, src: str, dst: str) -> bool:
    return src in graph and dst in graph and nx.has_path(graph, src, dst)


def _renumber(causes: list[RootCause]) -> list[RootCause]:
    from dataclasses import replace

    return [replace(c, rank=i) for i, c in enumerate(causes, start=1)]
