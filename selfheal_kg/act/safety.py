"""The safety gate in front of every healing: lock, budget, backoff and concurrency.

Remediation loops are what users of StackStorm, Robusta and Kubernetes complain about most:
an action that "works" but does not hold is repeated forever. The gate bounds that:

* **lock**: one healing at a time per target;
* **budget**: at most ``per_target_budget`` attempts per target in any ``window`` seconds;
  once spent, the refusal says ``escalate`` so the pipeline hands over to a human;
* **backoff**: after an attempt the target waits ``backoff_initial`` seconds, doubled after
  each failure up to ``backoff_max`` (Kubernetes' crash-loop backoff, 10 s → 5 min); a
  success keeps the current delay (a fix that does not hold is a recurrence), and a target
  left quiet for ``window`` seconds starts again from the initial delay;
* **concurrency**: at most ``max_concurrent`` healings at once across all targets.

A *restoring* permit (``acquire(target, restoring=True)``: putting back what an earlier repair
changed, e.g. releasing the extra instances of a scale-out once the load has fallen) takes the
lock and a concurrency slot, but neither spends budget nor waits for the backoff, and its
release leaves the backoff as it was: undoing a change is not a new attempt at healing.

Refusals are values, not exceptions: the caller decides (wait, escalate, drop).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from selfheal_kg.clock import Clock

Reason = Literal["locked", "budget", "backoff", "concurrency"]


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to heal ``target``; hand it back with ``SafetyGate.release``."""

    target: str
    token: int
    granted_at: float
    restoring: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a healing may not start now.

    Attributes:
        target: the target refused.
        reason: ``locked``, ``budget``, ``backoff`` or ``concurrency``.
        detail: one line for people.
        until: when asking again may succeed (``None``: when the current healing ends).
        escalate: the budget is spent: hand the incident to a human.
    """

    target: str
    reason: Reason
    detail: str
    until: float | None = None
    escalate: bool = False


@dataclass(slots=True)
class _TargetState:
    attempts: deque[float] = field(default_factory=deque)
    holder: int | None = None
    failures: int = 0
    next_allowed: float = float("-inf")
    last_release: float | None = None


class SafetyGate:
    """Grants or refuses healings of targets; thread-safe.

    Args:
        clock: the time source (a FakeClock in tests).
        per_target_budget: attempts allowed per target within ``window``.
        window: seconds of the budget window, and the quiet time that resets the backoff.
        backoff_initial: seconds to wait after a first attempt.
        backoff_max: the longest wait between attempts.
        max_concurrent: healings in flight at once, over all targets.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        per_target_budget: int = 3,
        window: float = 600.0,
        backoff_initial: float = 10.0,
        backoff_max: float = 300.0,
        max_concurrent: int = 4,
    ) -> None:
        if per_target_budget < 1 or max_concurrent < 1:
            raise ValueError("budget and concurrency must be at least 1")
        if window <= 0 or backoff_initial < 0 or backoff_max < backoff_initial:
            raise ValueError("need window > 0 and 0 <= backoff_initial <= backoff_max")
        self._clock = clock
        self.budget = per_target_budget
        self.window = window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_concurrent = max_concurrent
        self._targets: dict[str, _TargetState] = {}
        self._active: dict[int, str] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()

    def acquire(self, target: str, *, restoring: bool = False) -> Permit | Refusal:
        """Return a permit to heal ``target`` now, or the reason it must not.

        ``restoring``: the permit only puts back an earlier repair's change (lock and
        concurrency apply; budget and backoff do not).
        """
        with self._lock:
            now = self._clock.now()
            st = self._targets.setdefault(target, _TargetState())
            self._forget(st, now)
            refusal = self._refusal(target, st, now, restoring=restoring)
            if refusal is not None:
                return refusal
            token = next(self._tokens)
            st.holder = token
            if not restoring:
                st.attempts.append(now)
            self._active[token] = target
            return Permit(target, token, now, restoring)

    def release(self, permit: Permit, success: bool) -> None:
        """End the healing of ``permit``; start the backoff before the next attempt.

        Raises:
            ValueError: the permit was already released or is not from this gate.
        """
        with self._lock:
            if self._active.get(permit.token) != permit.target:
                raise ValueError(f"permit {permit.token} for {permit.target!r} is not held")
            del self._active[permit.token]
            st = self._targets[permit.target]
            st.holder = None
            if permit.restoring:
                return
            now = self._clock.now()
            if not success:
                st.failures += 1
            st.last_release = now
            st.next_allowed = now + self.delay(st.failures)

    def delay(self, failures: int) -> float:
        """Return the wait after an attempt that ended a streak of ``failures`` failures."""
        doublings = min(max(failures - 1, 0), 64)
        return min(self.backoff_max, self.backoff_initial * 2.0**doublings)

    def in_flight(self) -> int:
        """Return how many healings hold a permit now."""
        with self._lock:
            return len(self._active)

    def _forget(self, st: _TargetState, now: float) -> None:
        """Drop attempts older than the window; a quiet window resets the backoff."""
        while st.attempts and st.attempts[0] <= now - self.window:
            st.attempts.popleft()
        quiet = st.last_release is not None and now - st.last_release >= self.window
        if quiet and st.holder is None:
            st.failures = 0
            st.next_allowed = float("-inf")

    def _refusal(
        self, target: str, st: _TargetState, now: float, *, restoring: bool = False
    ) -> Refusal | None:
        if st.holder is not None:
            return Refusal(target, "locked", f"{target} is being healed (permit {st.holder})")
        if restoring:
            return self._busy(target)
        if len(st.attempts) >= self.budget:
            until = st.attempts[0] + self.window
            detail = (f"budget spent: {len(st.attempts)} attempts on {target} within "
                      f"{self.window:g} s; escalate to a human")
            return Refusal(target, "budget", detail, until=until, escalate=True)
        if now < st.next_allowed:
            detail = f"backing off {target} until {st.next_allowed:.0f}"
            return Refusal(target, "backoff", detail, until=st.next_allowed)
        return self._busy(target)

    def _busy(self, target: str) -> Refusal | None:
        if len(self._active) >= self.max_concurrent:
            detail = f"{len(self._active)} healings in flight (limit {self.max_concurrent})"
            return Refusal(target, "concurrency", detail)
        return None
