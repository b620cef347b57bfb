"""Pick up repairs interrupted by a crash: restore open incidents, reconcile the journal.

A step whose effect is visible is marked done and not repeated, one that did not happen is
resumed, one that had failed is rolled back; then the incident goes on to verification.
Temporary repairs held for release are watched again (:func:`restore_holds`).
These functions drive a :class:`~selfheal_kg.act.repairs.RepairFlow`, whose transitions
(gate, record, close) they reuse, so a recovered repair is recorded like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfheal_kg.act.journal import Entry, Journal, State, Verdict, reconcile, restore_incidents
from selfheal_kg.act.release import Hold, ReleaseLike
from selfheal_kg.act.safety import Refusal
from selfheal_kg.incident import Incident, Status
from selfheal_kg.kg.records import recorded_holds
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.model import Outcome, StepResult

if TYPE_CHECKING:
    from selfheal_kg.act.repairs import PlaybookFull, RepairFlow


def restore(flow: RepairFlow, journal: Journal, store: KnowledgeStore) -> list[Incident]:
    """Reload the open incidents into ``flow``; close the journal of the others.

    Healing incidents are queued for ``resume``; pending approvals restart their time to live.
    """
    now = flow.clock.now()
    restored = restore_incidents(store, flow.book)
    for inc in restored:
        if inc.status is Status.AWAITING_APPROVAL:
            flow.await_approval(inc, now)
        elif inc.status is Status.HEALING:
            flow.recovering.add(inc.id)
        elif inc.status is Status.VERIFYING:
            inc.repaired_at = now
    open_ids = {i.id for i in flow.book.open_incidents()}
    for incident in {e.incident for e in journal.in_flight()} - open_ids:
        journal.close_incident(incident, now)
    restore_holds(flow, journal, store)
    return restored


def restore_holds(flow: RepairFlow, journal: Journal, store: KnowledgeStore) -> list[Hold]:
    """Watch again the temporary repairs held when the process died (none is lost).

    A hold is rebuilt from its ``shk:Release`` record (level before, threshold, calm period)
    and the journaled steps of its repair (what changed, and the rollback points to put back);
    the playbook's current release condition says which steps it undoes. A hold whose playbook
    is no longer loaded, or whose steps are not in the journal, is left as it is: its change
    stays until a person undoes it.
    """
    out: list[Hold] = []
    for rec in recorded_holds(store):
        pb = flow.playbooks().get(rec.playbook)
        cond: ReleaseLike | None = getattr(pb, "release", None)
        if cond is None:
            continue
        entries = [e for e in journal.entries(rec.incident)
                   if e.state is State.DONE and e.rollback_point is not None
                   and (not cond.undo or e.action in cond.undo)]
        if not entries:
            continue
        inc = Incident(id=rec.incident, pattern=rec.pattern, node=rec.node, opened=rec.opened,
                       onset=rec.opened, status=Status.RESOLVED)
        inc.nodes.add(rec.node)
        changes = tuple(step_result(e, e.updated, True, e.detail) for e in entries)
        at_most = rec.threshold / rec.before if rec.before else cond.at_most
        h = Hold(inc, rec.target, rec.metric, at_most, rec.stable_seconds, rec.before,
                 changes, rec.since)
        if flow.releases.adopt(h):
            out.append(h)
    return out


def resume(flow: RepairFlow, inc: Incident, now: float) -> None:
    """Reconcile an interrupted repair: finish it, resume it, or roll it back."""
    pb = flow.playbook_of(inc, now)
    journal = flow.journal
    if pb is None or journal is None:
        return
    entries = [e for e in journal.entries(inc.id)
               if not e.closed and e.state is not State.SUPERSEDED]
    done = [e for e in entries if e.state is State.DONE]
    last = entries[-1] if entries else None
    next_step = 1 if last is None else last.step + 1
    if last is not None and last.state is State.FAILED:
        _recovered_failure(flow, inc, done, now)
        return
    if last is not None and last.state is State.INTENT:
        verdict = reconcile(last, flow.executors.get(last.action), flow.live, now)
        if verdict is Verdict.UNKNOWN:
            return  # the effect may still be coming; ask again next tick
        if verdict is Verdict.APPLIED:
            detail = "effect visible after a restart: marked done, not repeated"
            journal.finish(last.id, ok=True, at=now, detail=detail)
            flow.record(inc, step_result(last, now, True, detail), "repair")
            done.append(last)
        else:
            journal.supersede(last.id, at=now)
            next_step = last.step
    prior = [step_result(e, e.updated, True, e.detail) for e in done]
    _continue(flow, inc, pb, next_step, prior, now)


def _continue(
    flow: RepairFlow, inc: Incident, pb: PlaybookFull, next_step: int,
    prior: list[StepResult], now: float,
) -> None:
    assert inc.decision is not None and inc.decision.chosen is not None
    target = inc.decision.chosen.target
    if next_step > len(pb.steps):
        flow.recovering.discard(inc.id)
        inc.repaired_at = now
        flow.book.set_status(inc, Status.VERIFYING)
        return
    got = flow.gate.acquire(target)
    if isinstance(got, Refusal):
        flow.refused(inc, got, now)
        return
    flow.recovering.discard(inc.id)
    flow.submit(inc, pb, target, got, False, first=next_step, prior=prior)


def _recovered_failure(flow: RepairFlow, inc: Incident, done: list[Entry], now: float) -> None:
    """A step had failed before the crash: finish its rollback (restores are idempotent)."""
    flow.recovering.discard(inc.id)
    assert inc.decision is not None and inc.decision.chosen is not None
    prior = [step_result(e, e.updated, True, e.detail) for e in done]
    flow.healer.rollback(prior, inc.decision.chosen.target,
                         lambda r, ph: flow.record(inc, r, ph))
    reason = "a repair step failed; rolled back after a restart"
    flow.close_incident(inc, Outcome(inc.id, False, None, reason), now, Status.FAILED)


def step_result(entry: Entry, ended: float, ok: bool, detail: str) -> StepResult:
    """Rebuild the result of a journaled step (for the record and for rollback)."""
    return StepResult(
        step=entry.step, action=entry.action, target=entry.target, params=dict(entry.params),
        started=entry.created, ended=ended, ok=ok, detail=detail,
        rollback_point=entry.rollback_point,
    )
