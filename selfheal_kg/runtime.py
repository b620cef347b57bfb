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
from rdflib import URIRef
from rdflib.term import Node

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.heal import Healer
from selfheal_kg.act.registry import build_executors
from selfheal_kg.clock import Clock, SystemClock
from selfheal_kg.config import Config
from selfheal_kg.decide.choose import History
from selfheal_kg.decide.playbook import Playbook, load_playbooks
from selfheal_kg.detect.registry import make_detector, make_tracker
from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.engine.to_graph import rule_triples
from selfheal_kg.incident import IncidentBook, Recorder
from selfheal_kg.kg import records, topology
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH, SPARQL_PREFIXES
from selfheal_kg.kg.store import KnowledgeStore, open_store
from selfheal_kg.monitor.intake import Intake
from selfheal_kg.monitor.series import SeriesStore
from selfheal_kg.monitor.spans import SpanGraph
from selfheal_kg.pipeline import Knowledge, Pipeline, Settings, TickReport, Topology

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
        self.intake = Intake(
            self.series, self.clock, config.max_body_bytes, spans=self.spans
        )
        self.engine = DurableRuleEngine()
        self.engine.load(self.ruleset)
        self.executors = dict(executors) if executors is not None else build_executors(config)
        self._write_lock = threading.Lock()
        self.book = IncidentBook(Recorder(self._add_incident_triples, self._set_status))
        self.pipeline = Pipeline(
            clock=self.clock,
            series=self.series,
            detector=make_detector(),
            tracker=make_tracker(),
            engine=self.engine,
            knowledge=Knowledge(self._topology, self._playbooks, self._history),
            book=self.book,
            healer=Healer(self.executors, self.clock),
            settings=Settings(
                group_wait=config.group_wait_seconds,
                stale_after=config.stale_after_seconds,
                dry_run=config.dry_run,
            ),
        )
        self.ticks = 0
        self.last_error: str | None = None

    # -- knowledge providers ------------------------------------------------------------

    def _topology(self) -> Topology:
        edges = list(topology.edges(self.store))
        kinds = dict(topology.nodes(self.store))
        declared = set(edges)
        for e in self.spans.edges():
            pair = (e.caller, e.callee)
            if pair not in declared:
                edges.append(pair)
                kinds.setdefault(e.callee, KIND_CLASS.get(e.callee_kind, "Service"))
        return edges, kinds

    def _playbooks(self) -> Mapping[str, Playbook]:
        return self.playbooks

    def _history(self) -> Mapping[tuple[str, str], History]:
        q = SPARQL_PREFIXES + """
SELECT ?pb ?pattern (SUM(IF(?ok, 1, 0)) AS ?ok_n) (SUM(IF(?ok, 0, 1)) AS ?fail_n) WHERE {
  ?inc shk:hasDecision/shk:chosePlaybook ?pbi ; shk:hasOutcome/shk:succeeded ?ok ;
       shk:matchesPattern ?pi .
  BIND(STRAFTER(STR(?pbi), "/playbook/") AS ?pb)
  BIND(STRAFTER(STR(?pi), "/pattern/") AS ?pattern)
} GROUP BY ?pb ?pattern"""
        out: dict[tuple[str, str], History] = {}
        for row in self.store.query(q).dicts():  # type: ignore[union-attr]
            key = (str(row["pb"]), str(row["pattern"]))
            out[key] = History(int(row["ok_n"] or 0), int(row["fail_n"] or 0))  # type: ignore[arg-type]
        return out

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
        return self.pipeline.tick()

    def _sync_discovered(self) -> None:
        if self.ticks % 5:
            return
        edges = self.spans.edges()
        if edges:
            topology.add_discovered_edges(self.store, edges, self.clock.now())

    def start_background(self) -> asyncio.Task[None]:
        """Start the tick loop on the running event loop."""
        return asyncio.get_running_loop().create_task(self._loop())

    async def stop_background(self, task: asyncio.Task[None]) -> None:
        """Stop the tick loop and the healing workers."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await anyio.to_thread.run_sync(self.pipeline.close)

    async def _loop(self) -> None:
        while True:
            try:
                await anyio.to_thread.run_sync(self.tick)
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 -- one bad tick must not stop healing
                self.last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self.config.tick_seconds)

    def stats(self) -> dict[str, Any]:
        """Return counts for /healthz."""
        return {
            "ticks": self.ticks,
            "nodes": len(self.series.last_seen()),
            "open_incidents": len(self.book.open_incidents()),
            "active_signals": len(self.pipeline.active),
            "last_error": self.last_error,
        }

    def on_event(self, listener: Callable[[str, dict[str, object]], None]) -> None:
        """Subscribe to pipeline events (signal, diagnosis, incident, rca, decision, step, outcome)."""
        self.pipeline.listeners.append(listener)


def default_topology_files(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Return the topology files, expanded from directories."""
    out: list[Path] = []
    for p in paths:
        out += sorted(p.glob("*.ttl")) if p.is_dir() else [p]
    return tuple(out)
