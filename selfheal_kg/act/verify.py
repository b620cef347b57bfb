"""Verification: a repair is done only when its success criteria hold on live signals.

The criteria are read by the same detectors that fired: ``health == up`` holds when the
target has sent telemetry since the repair ended; ``cleared`` (or ``value <= baseline``) holds
when no signal on that metric is active for the target any more.

A signal that opens after the repair on the target or its dependents, on a metric of the
incident's symptoms that measures harm (not load, :func:`is_load`), is a regression once it
has lasted ``REGRESSION_GRACE`` seconds: a restart's callers see a few failed calls while it
comes back, and that blip clears by itself. Until then the repair is not verified either.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
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

    def active_ids(self) -> set[str]:
        """Ids of the signals active now."""
        ...

    def opened_since(
        self, nodes: Collection[str], t: float, metrics: Collection[str] | None = None,
        until: float | None = None,
    ) -> list[str]:
        """Ids of active signals on ``nodes`` (on ``metrics``, if given) with onset after ``t``
        (and not after ``until``, if given)."""
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
    """Whether all criteria hold, and a readable account of each.

    ``regressed`` lists signals that appeared on the target or its dependents after the repair:
    a side effect, rolled back at once.
    """

    passed: bool
    expired: bool
    detail: str
    regressed: tuple[str, ...] = ()


CLEARED = frozenset({"cleared", "value <= baseline", "no signal"})
#: seconds a signal opened after the repair must last before it counts as a regression
REGRESSION_GRACE = 5.0


def is_load(metric: str) -> bool:
    """Whether ``metric`` measures load rather than harm (a request rate).

    More traffic at the repaired service is no side effect: after a scale-out each new
    instance takes its share, and its own rate series jumps from nothing (or from an old
    level) to that share. Regressions are watched on the incident's other symptom metrics.
    """
    return metric.endswith(".request.rate")


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
    criteria: Sequence[CriterionLike],
    node: str,
    since: float,
    now: float,
    live: LiveView,
    *,
    symptoms: Collection[str] = (),
    dependents: Collection[str] = (),
    watched: Collection[str] | None = None,
) -> Verdict:
    """Evaluate every criterion for ``node`` after a repair that ended at ``since``.

    The repair is verified only when the target's criteria hold AND the incident's symptoms
    (signal ids, on the target and its dependents) have cleared. ``expired`` once the longest
    deadline has passed unmet; ``regressed`` when a new signal on one of the ``watched``
    metrics (all, when ``None``) opened on the target or ``dependents`` after the repair and
    has lasted ``REGRESSION_GRACE`` seconds (a younger one holds verification back).
    """
    results = [holds(c, node, since, live) for c in criteria]
    lingering = sorted(set(symptoms) & live.active_ids())
    if lingering:
        results.append((False, f"{len(lingering)} symptom(s) still active: {lingering[0]}"))
    nodes = {node, *dependents}
    regressed = tuple(live.opened_since(nodes, since, watched, until=now - REGRESSION_GRACE))
    young = sorted(set(live.opened_since(nodes, since, watched)) - set(regressed))
    if young:
        results.append((False, f"{len(young)} new signal(s) after the repair, watched "
                               f"{REGRESSION_GRACE:g} s before they count as a regression: "
                               f"{young[0]}"))
    passed = all(ok for ok, _ in results)
    deadline = max((c.deadline_seconds for c in criteria), default=30.0)
    expired = not passed and now - since > deadline
    detail = "; ".join(text for _, text in results) or "no success criteria"
    if regressed:
        detail += f"; regression after the repair: {', '.join(regressed)}"
    return Verdict(
        passed=passed and not regressed, expired=expired, detail=detail, regressed=regressed
    )
