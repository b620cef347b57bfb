"""Per-edge RED (rate, errors, duration) from the service graph, as derived series.

Each interval, every edge ``caller -> callee`` seen in traces yields points on the caller's
node: ``span.client.request.rate``, ``span.client.error.ratio``, ``span.client.duration.mean``
and ``span.client.duration.p95`` (seconds), in series named ``caller->callee|metric``. They are
the caller's view of its outgoing calls: the evidence that implicates a dependency with no
telemetry of its own (an uninstrumented database seen only through its callers' client spans).
"""

from __future__ import annotations

from dataclasses import dataclass

from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor.spans import LATENCY_BOUNDS, Edge


@dataclass(frozen=True, slots=True)
class _Seen:
    t: float
    calls: int
    errors: int
    latency_sum: float
    buckets: tuple[int, ...]


def quantile(buckets: list[int], q: float) -> float:
    """Return the ``q`` quantile of a bucketed distribution (linear inside the bucket)."""
    total = sum(buckets)
    if total == 0:
        return 0.0
    rank, seen = q * total, 0
    for i, count in enumerate(buckets):
        if seen + count >= rank and count > 0:
            lo = LATENCY_BOUNDS[i - 1] if i > 0 else 0.0
            hi = LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else LATENCY_BOUNDS[-1]
            return lo + (hi - lo) * (rank - seen) / count
        seen += count
    return LATENCY_BOUNDS[-1]


class EdgeRed:
    """Turns cumulative edge counters into per-interval derived points."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], _Seen] = {}

    def points(self, edges: list[Edge], now: float) -> list[DerivedPoint]:
        """Return the points of the interval since the previous call (none the first time)."""
        out: list[DerivedPoint] = []
        for e in edges:
            key = (e.caller, e.callee)
            prev = self._seen.get(key)
            self._seen[key] = _Seen(now, e.calls, e.errors, e.latency_sum, e.buckets)
            if prev is None or now <= prev.t or e.calls < prev.calls:
                continue
            calls = e.calls - prev.calls
            series = f"{e.caller}->{e.callee}|"
            values = {"span.client.request.rate": calls / (now - prev.t)}
            if calls > 0:
                deltas = [
                    b - a
                    for a, b in zip(prev.buckets or (0,) * len(e.buckets), e.buckets, strict=True)
                ]
                values["span.client.error.ratio"] = (e.errors - prev.errors) / calls
                values["span.client.duration.mean"] = (e.latency_sum - prev.latency_sum) / calls
                values["span.client.duration.p95"] = quantile(deltas, 0.95)
            out += [DerivedPoint(series + m, e.caller, m, now, v) for m, v in values.items()]
        return out
