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

import math
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import networkx as nx

from selfheal_kg.act.heal import Healer
from selfheal_kg.act.release import Level
from selfheal_kg.act.repairs import PlaybookFull, RepairFlow
from selfheal_kg.act.safety import SafetyGate
from selfheal_kg.clock import Clock
from selfheal_kg.decide.choose import History, choose
from selfheal_kg.decide.requirements import unmet
from selfheal_kg.detect.stage import DetectorLike, DetectStage, TrackerLike
from selfheal_kg.errors import NotFound
from selfheal_kg.incident import Incident, IncidentBook, Status
from selfheal_kg.model import (
    Decision,
    DerivedPoint,
    Diagnosis,
    Fact,
    FactValue,
    Firing,
    RootCause,
    Signal,
)
from selfheal_kg.monitor.alerts import AlertManager
from selfheal_kg.monitor.liveness import HealthChange, Liveness
from selfheal_kg.rca.evidence import anomalies_from, near, observed_nodes, with_diagnoses
from selfheal_kg.rca.evidence import component as component_of
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.patterns import diagnosis_hints, hints, match
from selfheal_kg.rca.rank import Anomaly, rank


class SeriesSource(Protocol):
    """What the pipeline reads of the series store."""

    def drain(self) -> list[DerivedPoint]: ...
    def last_seen(self) -> dict[str, float]: ...


class EngineLike(Protocol):
    """The rule engine port, as far as the pipeline uses it."""

    def assert_fact(self, fact: Fact) -> list[Firing]: ...
    def retract_fact(self, fact_id: str) -> list[Firing]: ...
    def advance(self, now: float) -> list[Firing]: ...


Topology = tuple[Sequence[tuple[str, str]], Mapping[str, str]]


@dataclass
class Knowledge:
    """Read-side providers of what the knowledge graph holds (refreshed on reload)."""

    topology: Callable[[], Topology]
    playbooks: Callable[[], Mapping[str, PlaybookFull]]
    history: Callable[[], Mapping[tuple[str, str], History]]
    patterns: Callable[[], Mapping[str, tuple[str, tuple[tuple[str, str], ...]]]] = dict
    # optional refinement of a decision (e.g. Thompson sampling among applicable candidates)
    refine: Callable[[Decision, str], Decision] | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Pipeline timings and switches."""

    group_wait: float = 2.0
    # an incident no playbook applies to waits this long (from its opening) for more
    # evidence before it is escalated: a stronger diagnosis may still come (a slow query
    # diagnosed a tick after the latency it causes)
    escalate_after: float = 6.0
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
        gate: SafetyGate | None = None,
        alerts: AlertManager | None = None,
        trend: DetectorLike | None = None,
        level: Level | None = None,
    ) -> None:
        self.clock = clock
        self.series = series
        # a series silent for many export intervals is gone (a replaced instance)
        self.detection = DetectStage(
            detector, tracker, trend, silent_after=max(30.0, 10 * settings.stale_after)
        )
        self.engine = engine
        self.knowledge = knowledge
        self.book = book
        self.healer = healer
        self.settings = settings
        self.liveness = Liveness(settings.stale_after)
        self.alerts = alerts
        self.active: dict[str, Signal] = {}
        self._inbox: list[Signal] = []
        self.recent: deque[Signal] = deque(maxlen=10_000)
        self._health_inbox: list[HealthChange] = []
        self._inbox_lock = threading.Lock()
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str, dict[str, object]], None]] = []
        self.repairs = RepairFlow(
            clock=clock,
            book=book,
            healer=healer,
            gate=gate or SafetyGate(clock, max_concurrent=settings.max_parallel),
            playbooks=knowledge.playbooks,
            live=self,
            emit=self._emit,
            dry_run=settings.dry_run,
            max_parallel=settings.max_parallel,
            level=level,
        )

    # -- stages -------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Run every stage once at the clock's current time."""
        with self._lock:
            now = self.clock.now()
            report = TickReport(now=now)
            report.opened, report.cleared = self._detect(now)
            external, probed = self._take_inbox()
            report.opened += [s for s in external if s.active]
            report.cleared += [s for s in external if not s.active]
            self._track(report.opened, report.cleared)
            report.health = self.liveness.update(self.series.last_seen(), now) + probed
            firings = self._facts(now, report)
            report.diagnoses = self._diagnoses(firings, now)
            self._group(report.diagnoses, now)
            self._decide_ready(now)
            self.repairs.tick(now)
            return report

    def _detect(self, now: float) -> tuple[list[Signal], list[Signal]]:
        return self.detection.run(self.series.drain(), now)

    def submit(self, signals: Sequence[Signal] = (), health: Sequence[HealthChange] = ()) -> None:
        """Queue signals from outside the detectors (Alertmanager) and probe results."""
        with self._inbox_lock:
            self._inbox += signals
            self._health_inbox += health

    def _take_inbox(self) -> tuple[list[Signal], list[HealthChange]]:
        with self._inbox_lock:
            signals, self._inbox = self._inbox, []
            health, self._health_inbox = self._health_inbox, []
        return signals, health

    def _track(self, opened: list[Signal], cleared: list[Signal]) -> None:
        """Alerting stage: active set, alert dedup/grouping, events."""
        for s in opened:
            self.active[s.id] = s
            self.recent.append(s)
            self._emit("signal", {"signal": s})
        for s in cleared:
            self.active.pop(s.id, None)
            self._emit("cleared", {"signal": s})
        if self.alerts is not None:
            for s in (*opened, *cleared):
                self.alerts.from_signal(s)

    def _facts(self, now: float, report: TickReport) -> list[Firing]:
        firings: list[Firing] = []
        for s in report.opened:
            attrs: dict[str, FactValue] = {
                "node": s.node,
                "metric": s.metric,
                "detector": s.detector,
                "direction": s.direction,
                "score": float(s.score),
                "onset": float(s.onset),
                "change": relative_change(s.value, s.baseline),
            }
            firings += self.engine.assert_fact(Fact(s.id, "signal", attrs, now))
        for s in report.cleared:
            firings += self.engine.retract_fact(s.id)
        for h in report.health:
            fid = f"health:{h.source}:{h.node}"
            self._emit("health", {"change": h})
            if h.status == "down":
                down: dict[str, FactValue] = {
                    "node": h.node,
                    "status": "down",
                    "source": h.source,
                    "onset": h.since,
                }
                firings += self.engine.assert_fact(Fact(fid, "health", down, now))
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
                priority=f.priority,
            )
            out.append(d)
            self._emit("diagnosis", {"diagnosis": d})
        return out

    def _group(self, diagnoses: list[Diagnosis], now: float) -> None:
        graph = self._graph()
        anomalous = set(self._anomalies())
        for d in diagnoses:
            # its dependencies and callers, and whatever anomalous part of the topology it
            # touches: a leaf starved by a failing sibling belongs to the sibling's incident
            related = near(graph, d.node) | component_of(graph, {d.node}, anomalous)
            inc = self.book.find_for(
                related, now, pattern=d.pattern,
                deviating=lambda n: any(s.node == n for s in self.active.values()),
            )
            if inc is None:
                inc = self.book.open(d, now)
                self._emit("incident", {"incident": inc})
            else:
                self.book.attach(inc, d)
            self.book.add_signals(inc, [s for s in self.active.values() if s.node in inc.nodes])

    def _decide_ready(self, now: float) -> None:
        for inc in self.book.open_incidents():
            waited = now - inc.opened >= self.settings.group_wait
            if inc.status is Status.OPEN and inc.decision is None and waited:
                self._decide(inc, now)

    def _decide(self, inc: Incident, now: float, *, start: bool = True) -> None:
        edges, kinds = self.knowledge.topology()
        snapshot = TopologySnapshot.from_edges(edges, kinds)
        # what a rule concluded at a node is corroborated evidence its dependencies must
        # account for in full (an Overload is not explained by a merely slow dependency)
        patterns = self.knowledge.patterns()
        anomalies = with_diagnoses(
            self._anomalies(), [(d.node, d.pattern) for d in inc.diagnoses], patterns
        )
        observed = observed_nodes(
            self.series.last_seen(), self.liveness.down(), snapshot.graph, anomalies
        )
        matches = match(patterns, self.active.values(), self.liveness.down())
        # The incident's evidence is the anomalous part of the topology connected to it: a
        # leaf whose traffic vanished because a sibling failed is connected to that sibling
        # through their common, failing caller.
        component = component_of(snapshot.graph, inc.nodes, set(anomalies))
        # a node where a rule concluded a pattern for this incident is stronger evidence than a
        # bare deviation next to it (a latency wobble below a service failing its requests),
        # and one backed by more symptoms (Overload) than one by a single one (HighLatency)
        hint = hints(matches)
        diagnosed = diagnosis_hints([(d.node, d.pattern) for d in inc.diagnoses], patterns)
        for node, strength in diagnosed.items():
            hint[node] = max(hint.get(node, 0.0), strength)
        causes = rank(
            snapshot,
            {n: a for n, a in anomalies.items() if n in component},
            top=5,
            observed=observed,
            pattern_hints=hint,
            # a callee explains a caller only through the same kind of symptom: a latency
            # wobble below a service failing its requests does not take the blame
            mode="traversal",
        )
        # A root another open incident is already repairing is not this incident's root.
        taken = {o.root for o in self.book.open_incidents() if o is not inc and o.root_causes}
        causes = _renumber([c for c in causes if c.node not in taken] or causes)
        inc.root_causes = causes  # recorded below, once the decision stands
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
            self.healer.unavailable,
            lambda names, node: unmet(names, node, list(self.active.values())),
        )
        if self.knowledge.refine is not None:
            decision = self.knowledge.refine(decision, pattern)
        if decision.chosen is None and start and now - inc.opened < self.settings.escalate_after:
            return  # nothing applies yet: decide again on the next tick, with what came since
        self.book.set_root_causes(inc, causes)
        self.book.add_signals(inc, [s for s in self.active.values() if s.node in inc.nodes])
        self._emit("rca", {"incident": inc, "causes": causes})
        self.book.set_decision(inc, decision, now)
        self._emit("decision", {"incident": inc, "decision": decision})
        if start:
            self.repairs.start(inc, now)

    def approve(self, incident_id: str, approver: str) -> Incident:
        """Approve the pending repair of an incident (the approvals API)."""
        with self._lock:
            return self.repairs.approve(incident_id, approver, self.clock.now())

    def heal(self, incident_id: str, *, dry_run: bool) -> Incident:
        """Decide now (if not yet) and run the repair of an open incident (the heal API)."""
        with self._lock:
            inc = self.book.get(incident_id)
            if inc is None or inc.status not in {Status.OPEN, Status.AWAITING_APPROVAL}:
                raise NotFound(f"incident {incident_id!r} is not open for healing")
            now = self.clock.now()
            if inc.decision is None:
                self._decide(inc, now, start=False)
            if inc.decision is not None and inc.decision.chosen is not None:
                self.repairs.approvals.pop(inc.id, None)
                self.repairs.heal_now(inc, now, dry_run=dry_run)
            else:
                self.repairs.start(inc, now)
            return inc

    # -- live view for verification -----------------------------------------------------

    def seen_since(self, node: str, t: float) -> bool:
        """Whether ``node`` sent telemetry after ``t`` (LiveView)."""
        return self.liveness.seen_since(node, t)

    def signal_active(self, node: str, metric: str) -> bool:
        """Whether a signal on ``metric`` is active for ``node`` (LiveView)."""
        return any(s.node == node and s.metric == metric for s in self.active.values())

    def active_ids(self) -> set[str]:
        """Ids of the signals active now (LiveView)."""
        return set(self.active)

    def opened_since(
        self, nodes: Collection[str], t: float, metrics: Collection[str] | None = None,
        until: float | None = None,
    ) -> list[str]:
        """Active signals on ``nodes`` (and ``metrics``) with onset in (``t``, ``until``]."""
        return sorted(
            s.id
            for s in self.active.values()
            if s.node in nodes and s.onset > t and (until is None or s.onset <= until)
            and (metrics is None or s.metric in metrics)
        )

    # -- helpers ------------------------------------------------------------------------

    def _anomalies(self, signals: Iterable[Signal] | None = None) -> dict[str, Anomaly]:
        chosen = self.active.values() if signals is None else signals
        return anomalies_from(chosen, self.liveness.down())

    def _graph(self) -> nx.DiGraph:
        edges, kinds = self.knowledge.topology()
        return TopologySnapshot.from_edges(edges, kinds).graph

    def _emit(self, kind: str, payload: dict[str, object]) -> None:
        for listener in list(self.listeners):
            listener(kind, payload)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for the repairs started so far (tests, shutdown)."""
        self.repairs.wait_idle(timeout)

    def close(self) -> None:
        """Stop the repair workers after the running steps finish."""
        self.repairs.close()


def _renumber(causes: list[RootCause]) -> list[RootCause]:
    return [replace(c, rank=i) for i, c in enumerate(causes, start=1)]


#: the relative change reported for a deviation from a zero baseline (a ratio that was 0)
FROM_ZERO = 1e6


def relative_change(value: float, baseline: float) -> float:
    """Return (value - baseline) / |baseline|: -1.0 is a fall to zero, +1.0 a doubling.

    From a zero baseline any rise is ``FROM_ZERO`` (a fall is impossible): finite, so rules
    and JSON can compare it.
    """
    if baseline == 0.0:
        return 0.0 if value == 0.0 else math.copysign(FROM_ZERO, value)
    return max(-FROM_ZERO, min(FROM_ZERO, (value - baseline) / abs(baseline)))
