"""The series store: OTLP metrics in, bounded derived series out.

Spec: https://opentelemetry.io/docs/specs/otel/metrics/data-model/. A stream's identity is its
resource attributes, scope, metric name, unit, type and point attributes; each stream keeps only
its last point (:mod:`selfheal_kg.monitor.streams`), each derived series a ring of its latest
values (:mod:`selfheal_kg.monitor.derive` says which series a metric yields). The points of
each metric are walked by :mod:`selfheal_kg.monitor.walker`.

A node that runs as several instances side by side (distinct ``service.instance.id`` whose
exports overlap in time within ``INSTANCE_WINDOW`` seconds) gets one series per instance
(``node|metric|instance``), each instance's exports being a separate measurement: interleaving
them in one series would make a series that jumps between instances (one failing, one fine),
which no detector can read. Signals still name the node, so rules, root cause analysis and
verification see the node.

An instance that *replaces* another (a restarted process with a new SDK instance id: the old
one stopped exporting before the new one started) continues the node's series: verification
after a restart compares the new process with the baseline from before the fault, and the
old process's series is not left behind holding its signal. A node's second instance is taken
for a replacement until the two have both exported after the second one started; from then
on (and at once for a node already running several) each has its own series.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Hashable
from typing import Final

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from selfheal_kg.clock import Clock
from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor import points
from selfheal_kg.monitor.attributes import KeyCache, attributes, node_of
from selfheal_kg.monitor.ring import Ring
from selfheal_kg.monitor.streams import Stream
from selfheal_kg.monitor.walker import Export, IngestStats, Origin, Walker

__all__ = ["IngestStats", "SeriesStore"]

_SWEEP_EVERY: Final = 10.0
#: seconds within which two instances exporting make a node multi-instance
INSTANCE_WINDOW: Final = 30.0
_INSTANCE_KEY: Final = "service.instance.id"
_MAX_INSTANCES: Final = 256


def instance_of(series: str) -> str | None:
    """Return the instance of a per-instance series id (``node|metric|instance``), else None."""
    parts = series.split("|", 2)
    return parts[2] if len(parts) == 3 else None


class SeriesStore:
    """Per-stream state and per-node derived series, bounded in memory; thread-safe.

    Args:
        clock: source of "now" for evicting idle streams.
        max_points_per_series: length of each derived series' history.
        max_streams: streams tracked at once; new ones beyond are refused (and counted).
        max_series: derived series kept at once; new ones beyond are dropped (and counted).
        stream_idle_seconds: a stream silent this long may be evicted to make room.
        max_pending: derived points kept for :meth:`drain`; the oldest go first.
    """

    def __init__(
        self,
        clock: Clock,
        max_points_per_series: int = 720,
        *,
        max_streams: int = 50_000,
        max_series: int = 10_000,
        stream_idle_seconds: float = 900.0,
        max_pending: int = 100_000,
    ) -> None:
        self._clock = clock
        self._capacity = max_points_per_series
        self._max_streams = max_streams
        self._max_series = max_series
        self._idle = stream_idle_seconds
        self._lock = threading.Lock()
        self._streams: dict[Hashable, Stream] = {}
        # resource + scope → (latest point time in ns, received at) of its last export
        self._origins: dict[Hashable, tuple[int, float]] = {}
        self._series: dict[str, Ring] = {}
        self._pending: deque[DerivedPoint] = deque(maxlen=max_pending)
        self._last_seen: dict[str, float] = {}
        # node → instance id → [first, last] export received
        self._instances: dict[str, dict[str, list[float]]] = {}
        self._bounds = points.BoundsCache()
        self._keys = KeyCache()
        self._last_sweep = -math.inf
        self.refused_streams = 0
        self.dropped_points = 0

    def ingest_metrics(
        self, request: ExportMetricsServiceRequest, received_at: float
    ) -> IngestStats:
        """Ingest one export: update stream states, derive per-node points, count outcomes."""
        export = Export(received_at)
        exported: dict[str, set[str]] = {}
        with self._lock:
            for rm in request.resource_metrics:
                resource = attributes(rm.resource.attributes)
                node = node_of(resource)
                self._touch(node, received_at)
                instance = resource.get(_INSTANCE_KEY)
                if isinstance(instance, str) and instance:
                    exported.setdefault(node, set()).add(instance[:128])
                resource_key = tuple(sorted(resource.items()))
                for sm in rm.scope_metrics:
                    key = (resource_key, sm.scope.name, sm.scope.version)
                    known = self._origins.get(key)
                    origin = Origin(node, key, known[0] if known else None)
                    for metric in sm.metrics:
                        Walker(self, export, origin, metric).walk()
                    if origin.latest > 0:
                        self._origins[key] = (origin.latest, received_at)
            separate = self._instances_of(exported, received_at)
            for derived in export.derivation.points():
                instance = separate.get(derived.node)
                self._append(derived if instance is None else DerivedPoint(
                    f"{derived.series}|{instance}", derived.node, derived.metric, derived.t,
                    derived.value))
        return export.stats()

    def _instances_of(self, exported: dict[str, set[str]], now: float) -> dict[str, str]:
        """Return ``{node: instance}`` for the nodes of this export that run as several."""
        out: dict[str, str] = {}
        for node, ids in exported.items():
            seen = self._instances.setdefault(node, {})
            for i in ids:
                span = seen.setdefault(i, [now, now])
                span[1] = now
            for i in [i for i, (_, last) in seen.items() if now - last > INSTANCE_WINDOW]:
                del seen[i]
            while len(seen) > _MAX_INSTANCES:  # bounded, whatever a client claims
                del seen[min(seen, key=lambda i: seen[i][1])]
            if len(ids) == 1 and _side_by_side(seen):
                out[node] = next(iter(ids))
        return out

    def append(self, point: DerivedPoint) -> None:
        """Add a point derived elsewhere (e.g. from logs) to its series and to :meth:`drain`."""
        with self._lock:
            self._append(point)

    def drain(self) -> list[DerivedPoint]:
        """Return the points derived since the previous call, in time order."""
        with self._lock:
            points = sorted(self._pending, key=lambda p: p.t)
            self._pending.clear()
        return points

    def window(self, series: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the history of a derived series as (times, values), oldest first."""
        with self._lock:
            ring = self._series.get(series)
            return ring.arrays() if ring else (np.empty(0), np.empty(0))

    def level(self, node: str, metric: str, start: float, end: float) -> float | None:
        """Return ``metric``'s level at ``node`` over ``[start, end)``, or None without points.

        The level of a node that runs as several instances is the sum of its instances'
        means (a request rate summed over the replicas is the service's); an instance
        without points in the window (stopped, or not yet started) adds nothing.
        """
        prefix = f"{node}|{metric}"
        with self._lock:
            rings = {k: r for k, r in self._series.items()
                     if k == prefix or k.startswith(prefix + "|")}
            means = {k: _mean_in(r, start, end) for k, r in rings.items()}
        per_instance = [m for k, m in means.items() if k != prefix and m is not None]
        if per_instance:
            return float(sum(per_instance))
        return means.get(prefix)

    def series(self) -> list[str]:
        """Return the ids of the derived series."""
        with self._lock:
            return sorted(self._series)

    def touch(self, node: str, received_at: float) -> None:
        """Record that ``node`` sent telemetry (spans, logs) at ``received_at``."""
        with self._lock:
            self._touch(node, received_at)

    def last_seen(self) -> dict[str, float]:
        """Return node → when its latest telemetry of any kind was received."""
        with self._lock:
            return dict(self._last_seen)

    def nodes(self) -> list[str]:
        """Return the known nodes."""
        with self._lock:
            return sorted(self._last_seen)

    def stream_count(self) -> int:
        """Return the number of streams tracked."""
        with self._lock:
            return len(self._streams)

    def _touch(self, node: str, received_at: float) -> None:
        if received_at > self._last_seen.get(node, -math.inf):
            self._last_seen[node] = received_at

    def _append(self, point: DerivedPoint) -> None:
        ring = self._series.get(point.series)
        if ring is None:
            if len(self._series) >= self._max_series:
                self.dropped_points += 1
                return
            ring = self._series[point.series] = Ring(self._capacity)
        if not ring.append(point.t, point.value):
            self.dropped_points += 1
            return
        if len(self._pending) == self._pending.maxlen:
            self.dropped_points += 1
        self._pending.append(point)

    def _forget(self, key: Hashable) -> None:
        self._streams.pop(key, None)

    def _stream(self, key: Hashable, received_at: float) -> Stream | None:
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= self._max_streams and not self._sweep(received_at):
                self.refused_streams += 1
                return None
            stream = self._streams[key] = Stream(received_at)
        stream.seen = received_at
        return stream

    def _sweep(self, received_at: float) -> bool:
        """Evict idle streams (at most every few seconds); return whether there is room."""
        now = self._clock.now()
        if now - self._last_sweep >= _SWEEP_EVERY:
            self._last_sweep = now
            horizon = min(now, received_at) - self._idle
            for key in [k for k, s in self._streams.items() if s.seen < horizon]:
                del self._streams[key]
            for key in [k for k, (_, seen) in self._origins.items() if seen < horizon]:
                del self._origins[key]
            for node in [n for n, ids in self._instances.items()
                         if max((last for _, last in ids.values()), default=-math.inf)
                         < horizon]:
                del self._instances[node]
        return len(self._streams) < self._max_streams


def _mean_in(ring: Ring, start: float, end: float) -> float | None:
    """Return the mean of ``ring``'s values with ``start <= t < end`` (None when there are none)."""
    times, values = ring.arrays()
    inside = values[(times >= start) & (times < end)]
    inside = inside[np.isfinite(inside)]
    return float(inside.mean()) if inside.size else None


def _side_by_side(spans: dict[str, list[float]]) -> bool:
    """Whether two of the instances exported after the other had started (both running).

    A restarted process's new instance starts after its predecessor's last export: one after
    the other, not side by side.
    """
    if len(spans) < 2:
        return False
    firsts = sorted((first, last) for first, last in spans.values())
    latest_last = firsts[0][1]
    for first, last in firsts[1:]:
        if latest_last >= first:
            return True
        latest_last = max(latest_last, last)
    return False
