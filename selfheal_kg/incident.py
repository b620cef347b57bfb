"""Incidents: the unit that detection opens, RCA explains, decision repairs and learning reads.

The book keeps the live incidents in memory and writes every change to the incidents graph
through a ``Recorder`` (the graph is the record; memory is only the working copy).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from rdflib import URIRef
from rdflib.term import Node

from selfheal_kg.act.safety import Permit
from selfheal_kg.kg import history
from selfheal_kg.model import Decision, Diagnosis, Outcome, RootCause, Signal, StepResult

Triple = tuple[Node, Node, Node]


class Status(StrEnum):
    """Lifecycle of an incident."""

    OPEN = "open"
    HEALING = "healing"
    VERIFYING = "verifying"
    AWAITING_APPROVAL = "awaiting-approval"
    RESOLVED = "resolved"
    FAILED = "failed"
    ESCALATED = "escalated"


CLOSED = frozenset({Status.RESOLVED, Status.FAILED, Status.ESCALATED})


class Recorder:
    """Writes incident triples to the incidents graph; status is replaced, not accumulated."""

    def __init__(
        self,
        add: Callable[[Iterable[Triple]], None],
        set_status: Callable[[URIRef, str], None],
    ) -> None:
        self._add = add
        self._set_status = set_status

    def add(self, triples: Iterable[Triple]) -> None:
        """Append triples."""
        self._add(list(triples))

    def status(self, incident_id: str, value: str) -> None:
        """Replace the incident's status."""
        self._set_status(history.incident_iri(incident_id), value)


@dataclass
class Incident:
    """The working copy of one incident."""

    id: str
    pattern: str
    node: str
    opened: float
    onset: float
    status: Status = Status.OPEN
    diagnoses: list[Diagnosis] = field(default_factory=list)
    signals: dict[str, Signal] = field(default_factory=dict)
    nodes: set[str] = field(default_factory=set)
    root_causes: list[RootCause] = field(default_factory=list)
    decision: Decision | None = None
    steps: list[StepResult] = field(default_factory=list)
    outcome: Outcome | None = None
    diagnosed_at: float | None = None
    repaired_at: float | None = None
    closed: float | None = None
    refusal: str | None = None
    permit: Permit | None = None
    approved_by: str | None = None

    @property
    def root(self) -> str:
        """The top-ranked root cause, or the first diagnosed node."""
        return self.root_causes[0].node if self.root_causes else self.node

    def pattern_at(self, node: str) -> str:
        """Return the pattern diagnosed at ``node`` by the highest-priority rule (the earliest
        among equals); for a node without a diagnosis of its own (a hidden database RCA
        inferred), the pattern of its nearest diagnosed caller on the root cause's path;
        else the incident's first pattern."""
        for hop in self._path_to(node):
            here = [d for d in self.diagnoses if d.node == hop]
            if here:
                return max(here, key=lambda d: (d.priority, -d.at)).pattern
        return self.pattern

    def _path_to(self, node: str) -> list[str]:
        """Return ``node``, then its callers on its root-cause path, nearest first."""
        for rc in self.root_causes:
            if rc.node == node and rc.path and rc.path[-1] == node:
                return list(reversed(rc.path))
        return [node]


class IncidentBook:
    """Opens, groups and closes incidents; thread-safe."""

    def __init__(self, recorder: Recorder, id_prefix: str = "inc") -> None:
        self._rec = recorder
        self.recorder = recorder
        self._lock = threading.RLock()
        self._open: dict[str, Incident] = {}
        self._closed: dict[str, Incident] = {}
        self._seq = itertools.count(1)
        self._prefix = id_prefix
        # the topology's IRI of each node name (kept current by the runtime); a name not in
        # it is recorded as a service
        self.iris: Mapping[str, URIRef] = {}

    def node_iri(self, name: str) -> URIRef:
        """Return the IRI the topology gives the node ``name``."""
        return self.iris.get(name) or history.target_iri(name)

    def open_incidents(self) -> list[Incident]:
        """Return the incidents not yet closed, oldest first."""
        with self._lock:
            return sorted(self._open.values(), key=lambda i: i.opened)

    def get(self, incident_id: str) -> Incident | None:
        """Return an incident by id (open or recently closed)."""
        with self._lock:
            return self._open.get(incident_id) or self._closed.get(incident_id)

    def find_for(
        self,
        nodes: Iterable[str],
        now: float | None = None,
        absorb: float = 600.0,
        pattern: str | None = None,
        deviating: Callable[[str], bool] | None = None,
    ) -> Incident | None:
        """Return the incident that already covers one of ``nodes``.

        An open incident covers its nodes; so does one escalated to a human less than
        ``absorb`` seconds ago, for the same pattern at one of its diagnosed nodes, while its
        root still deviates (``deviating``; ``None``: assume it does): a symptom that keeps
        flapping while a person looks at it is the same incident, not a new one each time it
        fires — but once that root is calm again, a new fault is a new incident.
        """
        wanted = set(nodes)
        with self._lock:
            for inc in self._open.values():
                if inc.nodes & wanted:
                    return inc
            if now is None:
                return None
            for inc in self._closed.values():
                recent = inc.closed is not None and now - inc.closed < absorb
                same = {(d.pattern, d.node) for d in inc.diagnoses}
                still = deviating is None or deviating(inc.root)
                if inc.status is Status.ESCALATED and recent and still and any(
                    (pattern, n) in same for n in wanted
                ):
                    return inc
        return None

    def restore(self, inc: Incident) -> None:
        """Take back an incident read from the record after a restart (nothing is written)."""
        with self._lock:
            self._open[inc.id] = inc

    def open(self, diag: Diagnosis, now: float) -> Incident:
        """Open an incident for a diagnosis that no open incident covers."""
        with self._lock:
            stamp = int(now * 1000)
            inc = Incident(
                id=f"{self._prefix}-{stamp}-{next(self._seq)}",
                pattern=diag.pattern,
                node=diag.node,
                opened=now,
                onset=diag.onset,
            )
            inc.nodes.add(diag.node)
            self._open[inc.id] = inc
        self._rec.add(
            history.incident_opened(inc.id, diag.node, diag.pattern, now, iri=self.node_iri)
        )
        self._rec.status(inc.id, inc.status.value)
        self.attach(inc, diag)
        return inc

    def attach(self, inc: Incident, diag: Diagnosis) -> None:
        """Add a diagnosis (and the signals its rule used) to an incident."""
        with self._lock:
            inc.diagnoses.append(diag)
            inc.nodes.add(diag.node)
            inc.onset = min(inc.onset, diag.onset)
            inc.diagnosed_at = inc.diagnosed_at or diag.at
        self._rec.add(history.diagnosis(inc.id, diag, iri=self.node_iri))

    def add_signals(self, inc: Incident, signals: Iterable[Signal]) -> None:
        """Record signals that belong to the incident (each once)."""
        new = []
        with self._lock:
            for s in signals:
                if s.id not in inc.signals:
                    inc.signals[s.id] = s
                    inc.nodes.add(s.node)
                    new.append(s)
        for s in new:
            self._rec.add(history.signal_record(inc.id, s, iri=self.node_iri))

    def set_root_causes(self, inc: Incident, causes: list[RootCause]) -> None:
        """Record the ranked root causes."""
        with self._lock:
            inc.root_causes = causes
            inc.nodes.update(c.node for c in causes[:1])
        self._rec.add(history.root_causes(inc.id, causes, iri=self.node_iri))

    def set_decision(self, inc: Incident, decision: Decision, now: float) -> None:
        """Record the decision."""
        with self._lock:
            inc.decision = decision
        self._rec.add(history.decision(decision, now, iri=self.node_iri))

    def add_step(self, inc: Incident, result: StepResult, phase: str = "repair") -> None:
        """Record an executed step."""
        with self._lock:
            inc.steps.append(result)
        self._rec.add(history.step(inc.id, result, phase, iri=self.node_iri))

    def approved(self, inc: Incident, approver: str, now: float) -> None:
        """Record who approved the repair, and when."""
        with self._lock:
            inc.approved_by = approver
        self._rec.add(history.approval(inc.id, approver, now))

    def set_status(self, inc: Incident, value: Status) -> None:
        """Move an incident to a new status."""
        with self._lock:
            inc.status = value
        self._rec.status(inc.id, value.value)

    def close(self, inc: Incident, outcome: Outcome, now: float, status: Status) -> None:
        """Close an incident with its outcome and timings."""
        timings = {"timeToDetect": max(0.0, inc.opened - inc.onset)}
        if inc.diagnosed_at is not None:
            timings["timeToDiagnose"] = max(0.0, inc.diagnosed_at - inc.onset)
        if inc.repaired_at is not None:
            timings["timeToRepair"] = max(0.0, inc.repaired_at - inc.onset)
        if outcome.verified_at is not None:
            timings["timeToRecover"] = max(0.0, outcome.verified_at - inc.onset)
        with self._lock:
            inc.outcome = outcome
            inc.closed = now
            inc.status = status
            self._open.pop(inc.id, None)
            self._closed[inc.id] = inc
        self._rec.add(history.outcome(outcome, now, timings))
        self._rec.status(inc.id, status.value)
