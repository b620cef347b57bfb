"""Verification: a repair is done only when its success criteria hold on live signals.

The criteria are read by the same detectors that fired: ``health == up`` holds when the
target has sent telemetry since the repair ended; ``cleared`` (or ``value <= baseline``) holds
when no signal on that metric is active for the target any more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class LiveView(Protocol):
    """What verification reads of the live state."""

    def seen_since(self, node: str, t: float) -> bool:
        """Whether ``node`` sent telemetry after ``t``."""
        ...

    def signal_active(self, node: str, metric: str) -> bool:
        """Whether a signal on ``metric`` is active for ``node``."""
        ...


class CriterionLike(Protocol):
    """A playbook success criterion."""

    @property
    def metric(self) -> str: ...
    @property
    def condition(self) -> str: ...
    @property
    def deadline_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether all criteria hold, and a readable account of each."""

    passed: bool
    expired: bool
    detail: str


CLEARED = frozenset({"cleared", "value <= baseline", "no signal"})


def holds(crit: CriterionLike, node: str, since: float, live: LiveView) -> tuple[bool, str]:
    """Evaluate one criterion for ``node`` after a repair that ended at ``since``."""
    cond = " ".join(crit.condition.split()).lower()
    if cond == "health == up":
        ok = live.seen_since(node, since)
        return ok, f"{node} health {'up' if ok else 'still down'}"
    if cond in CLEARED:
        active = live.signal_active(node, crit.metric)
        return not active, f"{crit.metric} on {node} {'still deviating' if active else 'cleared'}"
    return False, f"unknown condition {crit.condition!r}"


def verify(
    criteria: Sequence[CriterionLike], node: str, since: float, now: float, live: LiveView
) -> Verdict:
    """Evaluate every criterion; ``expired`` once the longest deadline has passed unmet."""
    results = [holds(c, node, since, live) for c in criteria]
    passed = all(ok for ok, _ in results)
    deadline = max((c.deadline_seconds for c in criteria), default=30.0)
    expired = not passed and now - since > deadline
    detail = "; ".join(text for _, text in results) or "no success criteria"
    return Verdict(passed=passed, expired=expired, detail=detail)
