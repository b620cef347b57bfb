"""Carry a decided incident through approval, the plan, the safety gate, healing and verification.

::

    Decision ─► no playbook ──────────────────────────────► escalated
             ─► needs approval ─► awaiting-approval ─► (approved) ─┐   (expired) ─► escalated
             ─► open: next tick, in plan order ◄───────────────────┘
                      │ waits for: an open incident on a node it calls → next tick
                      │ refusal: locked / backoff / concurrency → retried next tick
                      │ refusal: budget spent → escalated
                      ▼
                   healing (worker thread; each step journaled before it runs)
                      │ step failed → rolled back → failed
                      ▼
                   verifying ─► criteria hold → resolved;  deadline passed → rollback → failed
                      │
                      ▼ (a playbook with a ``release`` condition: a temporary repair)
                   held ─► trigger gone for long enough → its changes put back (release)

After a crash, ``recover`` reloads the open incidents from the record and reconciles the
journal (:mod:`selfheal_kg.act.recovery`, over ``selfheal_kg.act.journal``): a step whose
effect is visible is marked done and not repeated, one that did not happen is resumed, and
the incident goes on to verification.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from selfheal_kg.act import recovery
from selfheal_kg.act.executor import Executor
from selfheal_kg.act.heal import PARTIAL, Healer, StepLike
from selfheal_kg.act.journal import Journal, JournaledExecutor, JournalRun
from selfheal_kg.act.plan import PlanItem, build_plan, plan_step_triples
from selfheal_kg.act.release import Level, ReleaseLike, Releases
from selfheal_kg.act.safety import Permit, Refusal, SafetyGate
from selfheal_kg.act.verify import CriterionLike, LiveView, is_load, verify
from selfheal_kg.clock import Clock
from selfheal_kg.decide.choose import PlaybookLike
from selfheal_kg.errors import NotFound
from selfheal_kg.incident import CLOSED, Incident, IncidentBook, Status
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.model import Outcome, StepResult


class PlaybookFull(PlaybookLike, Protocol):
    """A playbook with steps, rollback steps and success criteria."""

    @property
    def steps(self) -> Sequence[StepLike]: ...
    @property
    def rollback(self) -> Sequence[StepLike]: ...
    @property
    def success(self) -> Sequence[CriterionLike]: ...


Emit = Callable[[str, dict[str, object]], None]
Edges = Callable[[], Iterable[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Approval:
    """A pending approval: who may approve until when."""

    incident: str
    requested_at: float
    expires_at: float


class RepairFlow:
    """Runs repairs on worker threads; every transition is recorded through the book."""

    def __init__(
        self,
        *,
        clock: Clock,
        book: IncidentBook,
        healer: Healer,
        gate: SafetyGate,
        playbooks: Callable[[], Mapping[str, PlaybookFull]],
        live: LiveView,
        emit: Emit,
        dry_run: bool = False,
        approval_ttl: float = 900.0,
        max_parallel: int = 4,
        level: Level | None = None,
    ) -> None:
        self.clock = clock
        self.book = book
        self.healer = healer
        self.gate = gate
        self.playbooks = playbooks
        self.live = live
        self.emit = emit
        self.dry_run = dry_run
        self.approval_ttl = approval_ttl
        self.approvals: dict[str, Approval] = {}
        self.journal: Journal | None = None
        self.executors: Mapping[str, Executor] = {}
        self._edges: Edges | None = None
        self.recovering: set[str] = set()
        self._planned: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="heal")
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        self.releases = Releases(
            level=level, book=book, healer=healer, gate=gate, emit=emit,
            submit=self._submit_work, clock_now=clock.now,
        )

    # -- configuration ------------------------------------------------------------------

    def order_by(self, edges: Edges) -> None:
        """Order concurrent repairs by the call graph ``edges`` (caller, callee).

        The same graph tells the steps that act ``acts_on: callers`` where to act.
        """
        self._edges = edges
        self.healer.callers = self.callers

    def callers(self, node: str) -> list[str]:
        """Return the nodes that call ``node`` in the call graph (sorted)."""
        if self._edges is None:
            return []
        return sorted({a for a, b in self._edges() if b == node and a != node})

    def use_journal(self, journal: Journal, executors: Mapping[str, Executor]) -> None:
        """Journal every step of ``executors`` in ``journal`` before it runs."""
        self.journal = journal
        self.executors = dict(executors)

    def recover(
        self, journal: Journal, executors: Mapping[str, Executor], store: KnowledgeStore
    ) -> list[Incident]:
        """Journal from now on, reload the open incidents, and queue interrupted repairs.

        Healing incidents are reconciled on the following ticks (``tick``); the journal of
        incidents that are no longer open is closed. Returns the restored incidents.
        """
        self.use_journal(journal, executors)
        return recovery.restore(self, journal, store)

    # -- entry points -------------------------------------------------------------------

    def start(self, inc: Incident, now: float) -> None:
        """Act on a freshly decided incident; healing starts at the next ``tick``, in plan order."""
        decision = inc.decision
        if decision is None:
            return
        if decision.chosen is None:
            self.escalate(inc, decision.why, now)
            return
        if decision.needs_approval:
            self.await_approval(inc, now)
            self.book.set_status(inc, Status.AWAITING_APPROVAL)
            self.emit("approval", {"incident": inc, "expires_at": now + self.approval_ttl})

    def await_approval(self, inc: Incident, now: float) -> None:
        """Hold ``inc`` for approval until the approval time to live has passed."""
        self.approvals[inc.id] = Approval(inc.id, now, now + self.approval_ttl)

    def approve(self, incident_id: str, approver: str, now: float) -> Incident:
        """Approve a pending repair; raise ``NotFound`` when nothing waits for approval."""
        pending = self.approvals.pop(incident_id, None)
        inc = self.book.get(incident_id)
        if pending is None or inc is None or inc.status is not Status.AWAITING_APPROVAL:
            raise NotFound(f"incident {incident_id!r} is not awaiting approval")
        if now > pending.expires_at:
            self.escalate(inc, "approval expired", now)
            raise NotFound(f"the approval of incident {incident_id!r} expired")
        self.book.approved(inc, approver, now)
        self.book.set_status(inc, Status.OPEN)
        self._try_heal(inc, now)
        return inc

    def heal_now(self, inc: Incident, now: float, *, dry_run: bool) -> None:
        """Run the decided playbook for ``inc`` now (the heal API), dry or for real.

        A person asked for it: the plan's ordering is not applied, the safety gate is.
        """
        self._try_heal(inc, now, dry_run=dry_run, planned=False)

    def tick(self, now: float) -> None:
        """Start planned repairs, resume recovered ones, expire approvals, verify."""
        for inc in self.book.open_incidents():
            if inc.status is Status.OPEN and inc.decision is not None:
                self._try_heal(inc, now)
            elif inc.status is Status.HEALING and inc.id in self.recovering:
                recovery.resume(self, inc, now)
            elif inc.status is Status.AWAITING_APPROVAL:
                pending = self.approvals.get(inc.id)
                if pending is not None and now > pending.expires_at:
                    self.approvals.pop(inc.id, None)
                    reason = "approval expired: escalated to a human"
                    self.escalate(inc, reason, now)
            elif inc.status is Status.VERIFYING:
                self._verify(inc, now)
        self.releases.tick(now, self._involved)

    def _involved(self, target: str) -> bool:
        """Whether an open incident involves ``target`` (a held repair of it stays meanwhile)."""
        return any(
            target in inc.nodes or target == inc.root for inc in self.book.open_incidents()
        )

    # -- plan ---------------------------------------------------------------------------

    def _waits(self, inc: Incident) -> bool:
        """Whether an open incident on a node ``inc``'s target calls must finish first."""
        if self._edges is None:
            return False
        decided = [
            i
            for i in self.book.open_incidents()
            if i.decision is not None and i.decision.chosen is not None
        ]
        if len(decided) < 2 or inc not in decided:
            return False
        items = [
            PlanItem(i.id, i.decision.chosen.target, i.opened)  # type: ignore[union-attr]
            for i in decided
        ]
        plan = build_plan(items, self._edges())
        waits = plan.waits_for(inc.id)
        if inc.id not in self._planned:
            self._planned.add(inc.id)
            self.book.recorder.add(plan_step_triples(plan, inc.id, iri=self.book.node_iri))
            if waits:
                self.emit("plan", {"incident": inc, "waits_for": sorted(waits)})
        return bool(waits)

    # -- healing ------------------------------------------------------------------------

    def playbook_of(self, inc: Incident, now: float) -> PlaybookFull | None:
        assert inc.decision is not None and inc.decision.chosen is not None
        pb = self.playbooks().get(inc.decision.chosen.playbook)
        if pb is None:
            self.escalate(inc, "playbook no longer loaded", now)
        return pb

    def _try_heal(
        self, inc: Incident, now: float, *, dry_run: bool | None = None, planned: bool = True
    ) -> None:
        pb = self.playbook_of(inc, now)
        if pb is None or (planned and self._waits(inc)):
            return
        assert inc.decision is not None and inc.decision.chosen is not None
        target = inc.decision.chosen.target
        dry = self.dry_run if dry_run is None else dry_run
        got = self.gate.acquire(target)
        if isinstance(got, Refusal):
            self.refused(inc, got, now)
            return
        self.book.set_status(inc, Status.HEALING)
        self.submit(inc, pb, target, got, dry, first=1, prior=())

    def submit(
        self,
        inc: Incident,
        pb: PlaybookFull,
        target: str,
        permit: Permit,
        dry: bool,
        *,
        first: int,
        prior: Sequence[StepResult],
    ) -> None:
        with self._lock:
            self._futures.append(
                self._pool.submit(self._heal, inc, pb, target, permit, dry, first, prior)
            )

    def _submit_work(self, work: Callable[[], None]) -> None:
        with self._lock:
            self._futures.append(self._pool.submit(work))

    def refused(self, inc: Incident, refusal: Refusal, now: float) -> None:
        if refusal.escalate:
            reason = f"safety gate: {refusal.detail}; escalated to a human"
            self.escalate(inc, reason, now)
        elif inc.refusal != refusal.reason:
            inc.refusal = refusal.reason
            self.emit("gate", {"incident": inc, "refusal": refusal})

    def record(self, inc: Incident, result: StepResult, phase: str) -> None:
        self.book.add_step(inc, result, phase)
        self.emit("step", {"incident": inc, "step": result, "phase": phase})

    def _runner(self, run: JournalRun, dry: bool) -> Healer:
        """Return the healer for one run: journaling when a journal is configured."""
        if self.journal is None or dry:
            return self.healer
        wrapped = {
            a: JournaledExecutor(ex, self.journal, run, self.clock)
            for a, ex in self.executors.items()
        }
        return Healer(wrapped, self.clock, self.healer.callers)

    def _heal(
        self,
        inc: Incident,
        pb: PlaybookFull,
        target: str,
        permit: Permit,
        dry: bool,
        first: int = 1,
        prior: Sequence[StepResult] = (),
    ) -> None:
        run = JournalRun(inc.id, pb.id, target, pb.steps, first)
        healer = self._runner(run, dry)
        offset = first - 1

        def on_step(result: StepResult, phase: str) -> None:
            result = replace(result, step=result.step + offset)
            if phase in ("repair", PARTIAL):
                # the step is done once its last place (of several callers) is done
                following = result.step + 1 if phase == "repair" else result.step
                with run.lock:
                    entry, run.entry, run.next_step = run.entry, None, following
                if entry is not None and self.journal is not None:
                    self.journal.finish(entry, ok=result.ok, at=result.ended, detail=result.detail)
            self.record(inc, result, "repair" if phase == PARTIAL else phase)

        ok = False
        try:
            result = healer.run(pb.steps[offset:], target, on_step, dry_run=dry)
            ok = result.ok
            if not ok and prior:
                healer.rollback(prior, target, lambda r, ph: self.record(inc, r, ph))
            self._repaired(inc, result.ok, bool(result.rolled_back or prior), dry, permit)
        finally:
            if not ok or dry:
                self.gate.release(permit, success=ok)
                inc.permit = None

    def _repaired(
        self, inc: Incident, ok: bool, rolled_back: bool, dry: bool, permit: Permit
    ) -> None:
        now = self.clock.now()
        inc.repaired_at = now
        inc.permit = permit
        if not ok:
            reason = "a repair step failed; rolled back" if rolled_back else "a repair step failed"
            self.close_incident(inc, Outcome(inc.id, False, None, reason), now, Status.FAILED)
        elif dry:
            reason = "dry run: steps recorded, nothing executed"
            self.close_incident(inc, Outcome(inc.id, True, None, reason), now, Status.RESOLVED)
        else:
            self.book.set_status(inc, Status.VERIFYING)

    # -- verification -------------------------------------------------------------------

    def _verify(self, inc: Incident, now: float) -> None:
        assert inc.decision is not None and inc.decision.chosen is not None
        pb = self.playbooks().get(inc.decision.chosen.playbook)
        since = inc.repaired_at or now
        criteria = pb.success if pb is not None else ()
        target = inc.decision.chosen.target
        symptoms = [s for s in diagnosed_symptoms(inc) if s in inc.signals]
        # a mitigation is judged by its criteria: the cause, and its symptoms, may remain
        mitigation = bool(getattr(pb, "mitigation", False))
        verdict = verify(
            criteria,
            target,
            since,
            now,
            self.live,
            symptoms=() if mitigation else symptoms,
            dependents=inc.nodes - {target},
            watched={m for m in (inc.signals[s].metric for s in symptoms) if not is_load(m)},
        )
        if verdict.passed:
            self._release(inc, success=True)
            detail = verdict.detail
            remaining = sorted(set(symptoms) & self.live.active_ids())
            if mitigation and remaining:
                detail += (f"; mitigated, the cause remains: {len(remaining)} symptom(s) still"
                           f" active ({', '.join(inc.signals[s].metric for s in remaining)})")
            # held before the outcome goes out: whoever sees the outcome sees the hold too
            release: ReleaseLike | None = getattr(pb, "release", None)
            if release is not None:
                self.releases.hold(inc, target, release, now)
            outcome = Outcome(inc.id, True, now, f"verified: {detail}")
            self.close_incident(inc, outcome, now, Status.RESOLVED)
        elif verdict.expired or verdict.regressed:
            self._release(inc, success=False)
            if pb is not None and pb.rollback:
                self.healer.run_rollback(
                    pb.rollback,
                    inc.decision.chosen.target,
                    lambda r, phase: self.book.add_step(inc, r, phase),
                )
            outcome = Outcome(inc.id, False, None, f"verification failed: {verdict.detail}")
            self.close_incident(inc, outcome, now, Status.FAILED)

    def _release(self, inc: Incident, *, success: bool) -> None:
        if inc.permit is not None:
            self.gate.release(inc.permit, success=success)
            inc.permit = None

    def escalate(self, inc: Incident, reason: str, now: float) -> None:
        """Close ``inc`` as escalated to a human, for ``reason``."""
        self.close_incident(inc, Outcome(inc.id, False, None, reason), now, Status.ESCALATED)

    def close_incident(self, inc: Incident, outcome: Outcome, now: float, status: Status) -> None:
        if inc.status in CLOSED:
            return
        self.book.close(inc, outcome, now, status)
        self.recovering.discard(inc.id)
        if self.journal is not None:
            self.journal.close_incident(inc.id, now)
        self.emit("outcome", {"incident": inc, "outcome": outcome})

    # -- lifecycle ----------------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for the repairs started so far (tests, shutdown)."""
        with self._lock:
            futures = list(self._futures)
        for f in futures:
            f.result(timeout=timeout)
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]

    def close(self) -> None:
        """Stop the workers after the running steps finish."""
        self._pool.shutdown(wait=True)


# detectors whose signals forecast a problem rather than observe one
PREDICTIONS = frozenset({"trend"})


def diagnosed_symptoms(inc: Incident) -> list[str]:
    """Return the ids of the signals the incident's rules concluded from (its real symptoms).

    Verification waits for these to clear, and watches their metrics for a regression; other
    deviations seen around the incident (a noisy tail latency) neither hold it back nor fail it.
    A prediction (the ``trend`` detector's time to exhaustion) is not a symptom: it was the
    reason to act early, and its fitted slope takes its own window to forget the old growth,
    so the repair is judged by its success criteria, not by the forecast clearing.
    """
    ids = (
        str(f.get("id"))
        for d in inc.diagnoses
        for f in d.facts
        if f.get("type") == "signal" and f.get("detector") not in PREDICTIONS
    )
    return list(dict.fromkeys(ids))
