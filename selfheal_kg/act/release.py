"""Temporary repairs: hold what a repair changed until its trigger is gone, then put it back.

A playbook with a ``release`` condition (docs/playbooks.md) makes a temporary change: the
extra instances of a scale-out are needed while the load is high, not after. Once such a
repair is verified, its changes are *held*::

    verified ─► holding ─(metric ≤ at_most x level before, for stable_seconds)─► releasing
                   ▲  │                                                          │ restore the
                   │  └─ an open incident on the target, or the level rises:     │ rollback
                   └──── calm starts again                                       ▼ points
                                                                       released / release failed

The level is read from the series store: the metric at the target summed over its instances,
averaged over ``LEVEL_WINDOW`` seconds; the level before is its mean over the ``BEFORE_WINDOW``
seconds before the incident's onset. Like the scale-down stabilisation window of Kubernetes'
HorizontalPodAutoscaler, the level must stay low for the whole ``stable_seconds`` before
anything is retired: one quiet scrape does not undo a scale-out.

Releasing goes through the safety gate with a *restoring* permit (one change at a time per
target; no budget spent) and runs on a repair worker; every step is recorded in the incident
(phase ``release``), and the hold itself (level before, threshold, the level that released it)
is a ``shk:Release`` node of the incident, so the record says why the capacity went away.
The newest hold of a target is released first (a second scale-out is undone before the first).
A hold survives a restart of selfheal: it is in the incident record (``shk:Release`` without
``shk:releasedAt``) and its changes, with their rollback points, are in the repair journal;
:func:`selfheal_kg.act.recovery.restore_holds` rebuilds it from both, and its calm is watched
again from the restart on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from selfheal_kg.act.heal import Healer
from selfheal_kg.act.safety import Refusal, SafetyGate
from selfheal_kg.incident import Incident, IncidentBook
from selfheal_kg.kg import history
from selfheal_kg.model import StepResult

#: seconds the current level is averaged over
LEVEL_WINDOW = 10.0
#: seconds before the incident's onset over which its level before is read
BEFORE_WINDOW = 60.0
PHASE = "release"

#: (node, metric, start, end) → the metric's level at the node over [start, end), or None
Level = Callable[[str, str, float, float], float | None]
Emit = Callable[[str, dict[str, object]], None]
Submit = Callable[[Callable[[], None]], None]


class ReleaseLike(Protocol):
    """A playbook's release condition."""

    @property
    def metric(self) -> str: ...
    @property
    def at_most(self) -> float: ...
    @property
    def stable_seconds(self) -> float: ...
    @property
    def undo(self) -> tuple[str, ...]: ...


@dataclass
class Hold:
    """A verified temporary repair, waiting for its trigger to be gone."""

    incident: Incident
    target: str
    metric: str
    at_most: float
    stable_seconds: float
    before: float
    changes: tuple[StepResult, ...]
    since: float
    calm_since: float | None = None
    level: float | None = None
    releasing: bool = field(default=False)

    @property
    def threshold(self) -> float:
        """The level at or below which the trigger counts as gone."""
        return self.at_most * self.before


def changes_of(inc: Incident, undo: tuple[str, ...] = ()) -> tuple[StepResult, ...]:
    """Return the steps of ``inc`` that changed something and can be put back.

    ``undo``: only the steps of these actions (empty: all of them).
    """
    return tuple(
        s for s in inc.steps
        if s.ok and s.rollback_point is not None and not s.dry_run
        and not s.action.startswith("restore:") and (not undo or s.action in undo)
    )


class Releases:
    """The holds of verified temporary repairs, released on the pipeline's ticks."""

    def __init__(
        self,
        *,
        level: Level | None,
        book: IncidentBook,
        healer: Healer,
        gate: SafetyGate,
        emit: Emit,
        submit: Submit,
        clock_now: Callable[[], float],
    ) -> None:
        self.level = level
        self.book = book
        self.healer = healer
        self.gate = gate
        self.emit = emit
        self.submit = submit
        self.now = clock_now
        self.holds: list[Hold] = []

    def hold(self, inc: Incident, target: str, cond: ReleaseLike, now: float) -> Hold | None:
        """Hold the changes of the verified repair of ``inc`` until ``cond`` holds.

        Nothing is held when the repair changed nothing that can be put back, or when the
        level before the incident cannot be read (then the record says the change stays).
        """
        changes = changes_of(inc, cond.undo)
        if not changes:
            return None
        before = None
        if self.level is not None:
            before = self.level(target, cond.metric, inc.onset - BEFORE_WINDOW, inc.onset)
        if before is None:
            why = (f"no level of {cond.metric} on {target} before the incident: the change "
                   "stays until a person undoes it")
            self.book.recorder.add(history.release_kept(inc.id, target, cond.metric, why, now,
                                                        iri=self.book.node_iri))
            self.emit("hold", {"incident": inc, "hold": None, "why": why})
            return None
        h = Hold(inc, target, cond.metric, cond.at_most, cond.stable_seconds, before,
                 changes, now)
        self.holds.append(h)
        self.book.recorder.add(history.release_held(
            inc.id, target, h.metric, before, h.threshold, h.stable_seconds, now,
            iri=self.book.node_iri))
        self.emit("hold", {"incident": inc, "hold": h})
        return h

    def adopt(self, h: Hold) -> bool:
        """Watch a hold rebuilt after a restart; False when its incident is already held."""
        if any(x.incident.id == h.incident.id for x in self.holds):
            return False
        self.holds.append(h)
        self.holds.sort(key=lambda x: x.since)
        self.emit("hold", {"incident": h.incident, "hold": h})
        return True

    def tick(self, now: float, busy: Callable[[str], bool]) -> None:
        """Watch each hold's level; release those whose trigger has been gone long enough.

        ``busy(target)``: an open incident involves the target (its changes stay meanwhile).
        """
        newest: dict[str, Hold] = {}
        for h in self.holds:
            newest[h.target] = h
        for h in list(newest.values()):
            if h.releasing:
                continue
            if busy(h.target):
                h.calm_since = None
                continue
            h.level = self._level_now(h, now)
            if h.level is None or h.level > h.threshold:
                h.calm_since = None
                continue
            if h.calm_since is None:
                h.calm_since = now
            if now - h.calm_since >= h.stable_seconds:
                self._release(h, now)

    def _level_now(self, h: Hold, now: float) -> float | None:
        if self.level is None:
            return None
        return self.level(h.target, h.metric, now - LEVEL_WINDOW, now + 1e-9)

    def _release(self, h: Hold, now: float) -> None:
        permit = self.gate.acquire(h.target, restoring=True)
        if isinstance(permit, Refusal):
            return  # locked or at the concurrency limit: the next tick asks again
        h.releasing = True
        level = h.level if h.level is not None else 0.0
        why = (f"{h.metric} on {h.target} at {level:.3g} <= {h.at_most:g} x {h.before:.3g} "
               f"(its level before the incident) for {now - (h.calm_since or now):.0f} s")
        self.emit("releasing", {"incident": h.incident, "hold": h, "why": why})

        def work() -> None:
            results: Sequence[StepResult] = ()
            try:
                results = self.healer.rollback(
                    h.changes, h.target, lambda r, _phase: self._record(h, r))
            finally:
                ok = bool(results) and all(r.ok for r in results)
                self.gate.release(permit, success=ok)
                self._done(h, ok, why, results)

        self.submit(work)

    def _record(self, h: Hold, result: StepResult) -> None:
        self.book.add_step(h.incident, result, PHASE)
        self.emit("step", {"incident": h.incident, "step": result, "phase": PHASE})

    def _done(self, h: Hold, ok: bool, why: str, results: Sequence[StepResult]) -> None:
        now = self.now()
        if h in self.holds:
            self.holds.remove(h)
        if not results:
            detail = f"{why}; nothing was restored"
        elif ok:
            detail = why
        else:
            detail = f"{why}; restoring failed: " + "; ".join(r.detail for r in results if not r.ok)
        self.book.recorder.add(history.release_done(
            h.incident.id, ok, h.level if h.level is not None else 0.0, detail, now))
        self.emit("release", {"incident": h.incident, "hold": h, "ok": ok, "why": detail,
                              "steps": list(results)})

    def pending(self, target: str | None = None) -> list[Hold]:
        """Return the holds not yet released (of ``target``, when given)."""
        return [h for h in self.holds if target is None or h.target == target]

