"""Liveness: a service that stops sending telemetry is down.

Every instrumented service exports on a fixed interval, so silence longer than a few intervals
means the process is gone (or cut off). Changes of state are returned as health facts for the
rule engine; a node is judged only after it has been seen once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A node's health moved to ``status`` at ``at``; ``since`` is its last telemetry."""

    node: str
    status: str
    at: float
    since: float
    source: str = "telemetry"


class Liveness:
    """Turns last-seen times into up/down transitions."""

    def __init__(self, stale_after: float) -> None:
        self._stale_after = stale_after
        self._down: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def update(self, last_seen: Mapping[str, float], now: float) -> list[HealthChange]:
        """Return the nodes whose state changed since the previous call."""
        self._last = dict(last_seen)
        changes: list[HealthChange] = []
        for node, seen in last_seen.items():
            stale = now - seen > self._stale_after
            if stale and node not in self._down:
                self._down[node] = seen
                changes.append(HealthChange(node, "down", now, seen))
            elif not stale and node in self._down:
                del self._down[node]
                changes.append(HealthChange(node, "up", now, seen))
        return changes

    def down(self) -> dict[str, float]:
        """Return the nodes now down, with the time they were last seen."""
        return dict(self._down)

    def seen_since(self, node: str, t: float) -> bool:
        """Whether ``node`` sent telemetry after ``t`` and is not down."""
        return self._last.get(node, float("-inf")) > t and node not in self._down
