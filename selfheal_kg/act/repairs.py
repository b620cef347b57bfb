"""Carry a decided incident through approval, the safety gate, healing and verification.

::

    Decision ─► no playbook ──────────────────────────────► escalated
             ─► needs approval ─► awaiting-approval ─► (approved) ─┐   (expired) ─► escalated
             ─► gate: permit ◄─────────────────────────────────────┘
                      │ refusal: locked / backoff / concurrency → retried next tick
                      │ refusal: budget spent → escalated
                      ▼
                   healing (worker thread) ─► step failed → rolled back → failed
                      ▼
                   verifying ─► criteria hold → resolved;  deadline passed → rollback → failed
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from selfheal_kg.act.heal import Healer, StepLike
from selfheal_kg.act.safety import Permit, Refusal, SafetyGate
from selfheal_kg.act.verify import CriterionLike, LiveView, verify
from selfheal_kg.clock import Clock
from selfheal_kg.decide.choose import PlaybookLike
from selfheal_kg.errors import NotFound
from selfheal_kg.incident import CLOSED, Incident, IncidentBook, Status
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
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="heal")
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()

    # -- entry points -------------------------------------------------------------------

    def start(self, inc: Incident, now: float) -> None:
        """Act on a freshly decided incident."""
        decision = inc.decision
        if decision is None:
            return
        if decision.chosen is None:
            self._close(inc, Outcome(inc.id, False, None, decision.why), now, Status.ESCALATED)
            return
        if decision.needs_approval:
            self.approvals[inc.id] = Approval(inc.id, now, now + self.approval_ttl)
            self.book.set_status(inc, Status.AWAITING_APPROVAL)
            self.emit("approval", {"incident": inc, "expires_at": now + self.approval_ttl})
            return
        self._try_heal(inc, now)

    def approve(self, incident_id: str, approver: str, now: float) -> Incident:
        """Approve a pending repair; raise ``NotFound`` when nothing waits for approval."""
        pending = self.approvals.pop(incident_id, None)
        inc = self.book.get(incident_id)
        if pending is None or inc is None or inc.status is not Status.AWAITING_APPROVAL:
            raise NotFound(f"incident {incident_id!r} is not awaiting approval")
        if now > pending.expires_at:
            self._close(inc, Outcome(inc.id, False, None, "approval expired"), now,
                         Status.ESCALATED)
            raise NotFound(f"the approval of incident {incident_id!r} expired")
        self.book.approved(inc, approver, now)
        self.book.set_status(inc, Status.OPEN)
        self._try_heal(inc, now)
        return inc

    def heal_now(self, inc: Incident, now: float, *, dry_run: bool) -> None:
        """Run the decided playbook for ``inc`` now (the heal API), dry or for real."""
        self._try_heal(inc, now, dry_run=dry_run)

    def tick(self, now: float) -> None:
        """Retry gated repairs, expire approvals, verify repairs in progress."""
        for inc in self.book.open_incidents():
            if inc.status is Status.OPEN and inc.decision is not None:
                self._try_heal(inc, now)
            elif inc.status is Status.AWAITING_APPROVAL:
                pending = self.approvals.get(inc.id)
                if pending is not None and now > pending.expires_at:
                    self.approvals.pop(inc.id, None)
                    reason = "approval expired: escalated to a human"
                    self._close(inc, Outcome(inc.id, False, None, reason), now, Status.ESCALATED)
            elif inc.status is Status.VERIFYING:
                self._verify(inc, now)

    # -- healing ------------------------------------------------------------------------

    def _try_heal(self, inc: Incident, now: float, *, dry_run: bool | None = None) -> None:
        assert inc.decision is not None and inc.decision.chosen is not None
        pb = self.playbooks().get(inc.decision.chosen.playbook)
        if pb is None:
            self._close(inc, Outcome(inc.id, False, None, "playbook no longer loaded"), now,
                        Status.ESCALATED)
            return
        target = inc.decision.chosen.target
        dry = self.dry_run if dry_run is None else dry_run
        got = self.gate.acquire(target)
        if isinstance(got, Refusal):
            self._refused(inc, got, now)
            return
        self.book.set_status(inc, Status.HEALING)
        with self._lock:
            self._futures.append(self._pool.submit(self._heal, inc, pb, target, got, dry))

    def _refused(self, inc: Incident, refusal: Refusal, now: float) -> None:
        if refusal.escalate:
            reason = f"safety gate: {refusal.detail}; escalated to a human"
            self._close(inc, Outcome(inc.id, False, None, reason), now, Status.ESCALATED)
        elif inc.refusal != refusal.reason:
            inc.refusal = refusal.reason
            self.emit("gate", {"incident": inc, "refusal": refusal})

    def _heal(
        self, inc: Incident, pb: PlaybookFull, target: str, permit: Permit, dry: bool
    ) -> None:
        def on_step(result: StepResult, phase: str) -> None:
            self.book.add_step(inc, result, phase)
            self.emit("step", {"incident": inc, "step": result, "phase": phase})

        ok = False
        try:
            run = self.healer.run(pb.steps, target, on_step, dry_run=dry)
            ok = run.ok
            now = self.clock.now()
            inc.repaired_at = now
            inc.permit = permit
            if not run.ok:
                reason = "a repair step failed; rolled back" if run.rolled_back else (
                    "a repair step failed")
                self._close(inc, Outcome(inc.id, False, None, reason), now, Status.FAILED)
            elif dry:
                reason = "dry run: steps recorded, nothing executed"
                self._close(inc, Outcome(inc.id, True, None, reason), now, Status.RESOLVED)
            else:
                self.book.set_status(inc, Status.VERIFYING)
        finally:
            if not ok or dry:
                self.gate.release(permit, success=ok)
                inc.permit = None

    def _verify(self, inc: Incident, now: float) -> None:
        assert inc.decision is not None and inc.decision.chosen is not None
        pb = self.playbooks().get(inc.decision.chosen.playbook)
        since = inc.repaired_at or now
        criteria = pb.success if pb is not None else ()
        verdict = verify(criteria, inc.decision.chosen.target, since, now, self.live)
        if verdict.passed:
            self._release(inc, success=True)
            outcome = Outcome(inc.id, True, now, f"verified: {verdict.detail}")
            self._close(inc, outcome, now, Status.RESOLVED)
        elif verdict.expired:
            self._release(inc, success=False)
            if pb is not None and pb.rollback:
                self.healer.run_rollback(pb.rollback, inc.decision.chosen.target,
                                         lambda r, phase: self.book.add_step(inc, r, phase))
            outcome = Outcome(inc.id, False, None, f"verification failed: {verdict.detail}")
            self._close(inc, outcome, now, Status.FAILED)

    def _release(self, inc: Incident, *, success: bool) -> None:
        if inc.permit is not None:
            self.gate.release(inc.permit, success=success)
            inc.permit = None

    def _close(self, inc: Incident, outcome: Outcome, now: float, status: Status) -> None:
        if inc.status in CLOSED:
            return
        self.book.close(inc, outcome, now, status)
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
