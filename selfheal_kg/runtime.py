"""Compose the running system from one ``Config``: stores, intake, detectors, rules, healing.

``Runtime`` owns every long-lived object and the tick loop. The API reads it through
``request.app.state.runtime``; the CLI and tests build it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from rdflib import URIRef
from rdflib.term import Node

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.heal import Healer
from selfheal_kg.act.journal import Journal
from selfheal_kg.act.registry import build_executors
from selfheal_kg.act.sql import SqlExecutor
from selfheal_kg.clock import Clock, SystemClock
from selfheal_kg.config import Config
from selfheal_kg.decide.choose import History
from selfheal_kg.decide.playbook import Playbook, load_playbooks
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.detect.registry import make_detector
from selfheal_kg.detect.trend import Trend
from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.engine.to_graph import rule_triples
from selfheal_kg.errors import FileLoadError
from selfheal_kg.incident import Incident, IncidentBook, Recorder, Status
from selfheal_kg.kg import records, topology
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH
from selfheal_kg.kg.store import KnowledgeStore, open_store
from selfheal_kg.learn.loop import LearningLoop
from selfheal_kg.learn.stats import history_for_decision
from selfheal_kg.model import Signal
from selfheal_kg.monitor.alerts import AlertManager, policy_from_graph
from selfheal_kg.monitor.dbstats import DbStatsPoller
from selfheal_kg.monitor.edge_red import EdgeRed
from selfheal_kg.monitor.intake import Intake
from selfheal_kg.monitor.logs import LogRates
from selfheal_kg.monitor.notify import Notification, Notifier, WebhookNotifier
from selfheal_kg.monitor.probes import Prober, probe_specs_from_graph
from selfheal_kg.monitor.recording import JsonlRecorder
from selfheal_kg.monitor.series import SeriesStore
from selfheal_kg.monitor.spans import SpanGraph
from selfheal_kg.monitor.templates import LogTemplates
from selfheal_kg.pipeline import Knowledge, Pipeline, Settings, TickReport, Topology
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.patterns import load_symptoms

Triple = tuple[Node, Node, Node]

# span-discovered node kinds → ontology class names (what playbooks' target_types name)
KIND_CLASS = {
    "service": "Service",
    "database": "Database",
    "queue": "Queue",
    "external": "ExternalService",
}


class Runtime:
    """Everything ``selfheal serve`` runs, built once from the configuration."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        executors: Mapping[str, Executor] | None = None,
        store: KnowledgeStore | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.store = store or open_store(config.store_path)
        self.loader = KnowledgeLoader(self.store, config.ontology_dir)
        self.ruleset = load_rules(config.rules_dir)
        self.playbooks: dict[str, Playbook] = load_playbooks(config.playbooks_dir)
        self.loader.load_all(
            config.topology_files, config.playbooks_dir, rules_triples=rule_triples(self.ruleset)
        )
        self.series = SeriesStore(self.clock, max_points_per_series=config.max_points_per_series)
        self.spans = SpanGraph(self.clock)
        self.edge_red = EdgeRed()
        self.templates = LogTemplates(self.clock)
        self.logs = LogRates(self.series, templates=self.templates)
        self.recorder = (
            JsonlRecorder(config.record_path, self.clock) if config.record_path else None
        )
        self.intake = Intake(
            self.series,
            self.clock,
            config.max_body_bytes,
            spans=self.spans,
            logs=self.logs,
            recorder=self.recorder,
        )
        self.engine = DurableRuleEngine()
        self.engine.load(self.ruleset)
        # executors built here from the configuration are closed here; given ones, by the giver
        self._owns_executors = executors is None
        self.executors = dict(executors) if executors is not None else build_executors(config)
        self._write_lock = threading.Lock()
        self.book = IncidentBook(Recorder(self._add_incident_triples, self._set_status))
        self.discovery = topology.DiscoverySync(self.store, self.loader)
        self.alerts = AlertManager(
            self.clock, self._graph, escalation=policy_from_graph(self.store)
        )
        self.notifier: Notifier | None = (
            WebhookNotifier(config.notify_url) if config.notify_url else None
        )
        self.prober = Prober(self.clock, probe_specs_from_graph(self.store))
        # the statistics of the databases the SQL executors can act on (PostgreSQL only)
        self.dbstats = DbStatsPoller(_database_dsns(self.executors.values()), self.clock)
        self._patterns = load_symptoms(self.store)
        self.learning = LearningLoop(self.store, self.clock, np.random.default_rng())
        self.pipeline = Pipeline(
            clock=self.clock,
            series=self.series,
            detector=make_detector(),
            tracker=SignalTracker(levels=self.learning.levels),
            engine=self.engine,
            knowledge=Knowledge(
                self._topology,
                self._playbooks,
                self._history,
                lambda: self._patterns,
                refine=self.learning.refine,
            ),
            book=self.book,
            healer=Healer(self.executors, self.clock),
            settings=Settings(
                group_wait=config.group_wait_seconds,
                stale_after=config.stale_after_seconds,
                dry_run=config.dry_run,
            ),
            alerts=self.alerts,
            level=self.series.level,
            trend=Trend(horizon=config.trend_horizon_seconds),
        )
        # repairs in topology order; on disk, a step journal beside the store and recovery
        self.pipeline.repairs.order_by(lambda: self._topology()[0])
        if config.store_path is not None:
            journal = Journal(config.store_path.with_name(config.store_path.name + ".journal"))
            self.pipeline.repairs.recover(journal, self.executors, self.store)
        self.on_event(self.learning.on_event)
        self.on_event(self._page_on_escalation)
        self.ticks = 0
        self.last_error: str | None = None
        self.last_reload: dict[str, Any] = {"ok": True, "at": self.clock.now(), "error": None}
        self._reload_lock = threading.Lock()
        self._mtimes = self._scan()

    # -- knowledge providers ------------------------------------------------------------

    def _topology(self) -> Topology:
        edges = list(topology.edges(self.store))
        kinds = dict(topology.nodes(self.store))
        # incidents name their nodes by the topology's IRIs (a database is /database/...)
        self.book.iris = topology.node_iris(self.store)
        declared = set(edges)
        for e in self.spans.edges():
            pair = (e.caller, e.callee)
            if pair not in declared:
                edges.append(pair)
                kinds.setdefault(e.callee, KIND_CLASS.get(e.callee_kind, "Service"))
        return edges, kinds

    def _graph(self) -> Any:
        edges, kinds = self._topology()
        return TopologySnapshot.from_edges(edges, kinds).graph

    def _playbooks(self) -> Mapping[str, Playbook]:
        return self.playbooks

    def _history(self) -> Mapping[tuple[str, str], History]:
        return history_for_decision(self.store)

    # -- incident writes ----------------------------------------------------------------

    def _add_incident_triples(self, triples: Iterable[Triple]) -> None:
        with self._write_lock:
            self.store.add(INCIDENTS_GRAPH, triples)

    def _set_status(self, inc: URIRef, value: str) -> None:
        with self._write_lock:
            records.set_status(self.store, inc, value)

    # -- the loop -----------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Run the pipeline once; errors are kept for /healthz and never stop the loop."""
        self.ticks += 1
        self._sync_discovered()
        if self.ticks % 5 == 0 and self._scan() != self._mtimes:
            self._reload_quietly()
        self.pipeline.submit(signals=self.templates.drain())
        report = self.pipeline.tick()
        self._notify()
        return report

    def _notify(self) -> None:
        """Send due alert-group notifications, and pages for escalation levels reached."""
        if self.notifier is None:
            return
        now = self.clock.now()
        self.alerts.dispatch(self.notifier, now)
        for esc in self.alerts.escalations(now):
            if esc.action == "page":
                self.notifier.send(
                    Notification(f"page:{esc.group_id}", esc.root, "firing", (), now)
                )

    def _page_on_escalation(self, kind: str, payload: dict[str, object]) -> None:
        inc = payload.get("incident")
        if kind != "outcome" or self.notifier is None or not isinstance(inc, Incident):
            return
        if inc.status is Status.ESCALATED:
            page = Notification(f"incident:{inc.id}", inc.root, "firing", (), self.clock.now())
            self.notifier.send(page)

    def external_signals(self, signals: list[Signal]) -> None:
        """Hand signals from outside the detectors (Alertmanager) to the next tick."""
        self.pipeline.submit(signals=signals)

    def poll_databases(self) -> None:
        """Read the due database statistics into their series (blocking)."""
        for point in self.dbstats.poll_due():
            self.series.append(point)

    def probe(self) -> None:
        """Run the due health probes (blocking) and hand their transitions to the next tick."""
        changes = self.prober.run_due()
        if changes:
            self.pipeline.submit(health=changes)

    # -- hot reload ---------------------------------------------------------------------

    def _authored(self) -> list[Path]:
        files = [*self.config.topology_files]
        for d in (self.config.rules_dir, self.config.playbooks_dir, self.config.ontology_dir):
            files += sorted(p for p in d.glob("*") if p.suffix in {".yaml", ".yml", ".ttl"})
        return files

    def _scan(self) -> dict[str, float]:
        out = {}
        for f in self._authored():
            with contextlib.suppress(OSError):
                out[str(f)] = f.stat().st_mtime
        return out

    def reload(self) -> dict[str, Any]:
        """Re-read rules, playbooks, patterns and topology; swap only if every file is valid.

        Raises:
            FileLoadError: a file was refused; everything in force stays in force.
        """
        with self._reload_lock:
            mtimes = self._scan()
            ruleset = load_rules(self.config.rules_dir)
            playbooks = load_playbooks(self.config.playbooks_dir)
            problems = self.loader.validate_paths(
                [*self.config.topology_files, self.config.playbooks_dir, self.config.rules_dir]
            )
            if problems:
                raise FileLoadError("reload", "; ".join(problems))
            self.engine.load(ruleset)
            self.loader.load_all(
                self.config.topology_files,
                self.config.playbooks_dir,
                rules_triples=rule_triples(ruleset),
            )
            self.ruleset, self.playbooks = ruleset, playbooks
            self._patterns = load_symptoms(self.store)
            self._mtimes = mtimes
            self.last_reload = {"ok": True, "at": self.clock.now(), "error": None}
            return {
                "rules": len(ruleset.rules),
                "playbooks": len(playbooks),
                "patterns": len(self._patterns),
                "topology_files": [str(p) for p in self.config.topology_files],
            }

    def _reload_quietly(self) -> None:
        try:
            self.reload()
        except FileLoadError as exc:
            self._mtimes = self._scan()  # do not retry the same broken files every tick
            self.last_reload = {"ok": False, "at": self.clock.now(), "error": str(exc)}

    def _sync_discovered(self) -> None:
        if self.ticks % 5:
            return
        now = self.clock.now()
        self.spans.expire(now)
        edges = self.spans.edges()
        for point in self.edge_red.points(edges, now):
            self.series.append(point)
        if edges:
            self.discovery.sync(edges, now)

    def start_background(self) -> asyncio.Task[None]:
        """Start the tick loop on the running event loop."""
        return asyncio.get_running_loop().create_task(self._loop())

    async def stop_background(self, task: asyncio.Task[None]) -> None:
        """Stop the tick loop and the healing workers."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await anyio.to_thread.run_sync(self.pipeline.close)
        if self.recorder is not None:
            self.recorder.close()
        self.dbstats.close()
        if self._owns_executors:
            self.close_executors()

    def close_executors(self) -> None:
        """Close the connections the executors hold (SQL connections, HTTP pools), once each."""
        seen: set[int] = set()
        for ex in self.executors.values():
            close = getattr(ex, "close", None)
            if id(ex) in seen or not callable(close):
                continue
            seen.add(id(ex))
            close()

    async def _loop(self) -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(self.tick)
                self.last_error = None
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self.prober.specs:
                with contextlib.suppress(Exception):
                    await anyio.to_thread.run_sync(self.probe)
            if self.dbstats.targets:
                with contextlib.suppress(Exception):
                    await anyio.to_thread.run_sync(self.poll_databases)
            await asyncio.sleep(self.config.tick_seconds)

    def stats(self) -> dict[str, Any]:
        """Return counts for /healthz."""
        return {
            "ticks": self.ticks,
            "nodes": len(self.series.last_seen()),
            "open_incidents": len(self.book.open_incidents()),
            "active_signals": len(self.pipeline.active),
            "last_error": self.last_error,
            "last_reload": self.last_reload,
            "alerts": len(self.alerts.alerts()),
            "discovery": self.discovery.health(),
        }

    def on_event(self, listener: Callable[[str, dict[str, object]], None]) -> None:
        """Subscribe to pipeline events (signal, diagnosis, rca, decision, step, outcome ...)."""
        self.pipeline.listeners.append(listener)


def default_topology_files(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Return the topology files, expanded from directories."""
    out: list[Path] = []
    for p in paths:
        out += sorted(p.glob("*.ttl")) if p.is_dir() else [p]
    return tuple(out)


def _database_dsns(executors: Iterable[object]) -> dict[str, str]:
    """Return ``{database node: conninfo}`` of every SQL executor's databases."""
    out: dict[str, str] = {}
    for ex in executors:
        if isinstance(ex, SqlExecutor):
            out.update(ex.dsns())
    return out
