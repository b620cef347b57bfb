"""The series store: OTLP metrics in, bounded derived series out.

Spec: https://opentelemetry.io/docs/specs/otel/metrics/data-model/. A stream's identity is its
resource attributes, scope, metric name, unit, type and point attributes; each stream keeps only
its last point (:mod:`selfheal_kg.monitor.streams`), each derived series a ring of its latest
values (:mod:`selfheal_kg.monitor.derive` says which series a metric yields).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    Metric,
    NumberDataPoint,
)

from selfheal_kg.clock import Clock
from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor import points
from selfheal_kg.monitor.attributes import (
    AttrKey,
    KeyCache,
    attributes,
    is_error,
    node_of,
    to_base_unit,
)
from selfheal_kg.monitor.derive import OLD_MS_METRICS, Derivation, histogram_names
from selfheal_kg.monitor.histograms import Floats
from selfheal_kg.monitor.ring import Ring
from selfheal_kg.monitor.streams import HistogramPoint, Stream, interval_of

_NO_RECORDED_VALUE: Final = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK
_MAX_REASONS: Final = 5
_SWEEP_EVERY: Final = 10.0
_NS: Final = 1e9
_TEMPORALITIES: Final = (AGGREGATION_TEMPORALITY_CUMULATIVE, AGGREGATION_TEMPORALITY_DELTA)
# Shared by every histogram stream key (a tuple per point would also be one per stream).
_HISTOGRAM_TAGS: Final[dict[int, tuple[str, int]]] = {t: ("histogram", t) for t in _TEMPORALITIES}


@dataclass(frozen=True, slots=True)
class IngestStats:
    """What one export did: points (or spans, log records) accepted, rejected, duplicated.

    Duplicates (retried exports) are accepted but not counted twice; ``message`` explains
    the rejections, for OTLP's ``partial_success``.
    """

    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    message: str = ""


class _Export:
    """One export being ingested: its counts, first rejection reasons and derivation."""

    __slots__ = ("accepted", "derivation", "duplicates", "reasons", "received_at", "rejected")

    def __init__(self, received_at: float) -> None:
        self.received_at = received_at
        self.derivation = Derivation()
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0
        self.reasons: dict[str, None] = {}

    def reject(self, metric: str, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < _MAX_REASONS:
            self.reasons[f"{metric}: {reason}"] = None

    def stats(self) -> IngestStats:
        message = "; ".join(self.reasons)
        if self.rejected > len(self.reasons):
            message += f" ({self.rejected} points rejected in all)"
        return IngestStats(self.accepted, self.rejected, self.duplicates, message)


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
        self._bounds = points.BoundsCache()
        self._keys = KeyCache()
        self._last_sweep = -math.inf
        self.refused_streams = 0
        self.dropped_points = 0

    def ingest_metrics(
        self, request: ExportMetricsServiceRequest, received_at: float
    ) -> IngestStats:
        """Ingest one export: update stream states, derive per-node points, count outcomes."""
        export = _Export(received_at)
        with self._lock:
            for rm in request.resource_metrics:
                resource = attributes(rm.resource.attributes)
                node = node_of(resource)
                self._touch(node, received_at)
                resource_key = tuple(sorted(resource.items()))
                for sm in rm.scope_metrics:
                    key = (resource_key, sm.scope.name, sm.scope.version)
                    known = self._origins.get(key)
                    origin = _Origin(node, key, known[0] if known else None)
                    for metric in sm.metrics:
                        _Walker(self, export, origin, metric).walk()
                    if origin.latest > 0:
                        self._origins[key] = (origin.latest, received_at)
            for point in export.derivation.points():
                self._append(point)
        return export.stats()

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
        return len(self._streams) < self._max_streams


class _Origin:
    """The resource and scope of the metrics being walked."""

    __slots__ = ("key", "latest", "node", "since")

    def __init__(self, node: str, key: Hashable, since: int | None) -> None:
        self.node = node
        self.key = key
        self.since = since  # latest point time of its previous export, if any
        self.latest = 0


class _Walker:
    """Walks the points of one metric: validate, find the stream, derive."""

    __slots__ = (
        "derivation", "export", "metric", "name", "names",
        "node", "origin", "scale", "store", "unit",
    )  # fmt: skip

    def __init__(
        self, store: SeriesStore, export: _Export, origin: _Origin, metric: Metric
    ) -> None:
        self.store = store
        self.export = export
        self.derivation = export.derivation
        self.node = origin.node
        self.origin = origin
        self.metric = metric
        # read once: every access to a protobuf field builds a new Python object
        self.name, self.unit = metric.name, metric.unit
        unit = metric.unit or ("ms" if metric.name in OLD_MS_METRICS else "")
        self.scale = to_base_unit(unit)
        self.names = histogram_names(metric.name)

    def walk(self) -> None:
        kind = self.metric.WhichOneof("data")
        if kind == "gauge":
            self.gauge()
        elif kind == "sum":
            self.sum()
        elif kind == "histogram":
            self.histogram()
        elif kind == "exponential_histogram":
            self.exponential_histogram()
        elif kind == "summary":
            self.summary()

    def gauge(self) -> None:
        for dp in self.metric.gauge.data_points:
            found = self._number_point(dp, "gauge")
            if found:
                stream, value = found
                stream.observe(dp.time_unix_nano)
                t = _s(dp.time_unix_nano)
                self.derivation.value(self.node, self.metric.name, "mean", stream, t=t, value=value)

    def sum(self) -> None:
        data = self.metric.sum
        temporality = data.aggregation_temporality
        if temporality not in _TEMPORALITIES:
            for _ in data.data_points:
                self.export.reject(self.name, "aggregation temporality unspecified")
            return
        monotonic = data.is_monotonic
        tag = ("sum", temporality, monotonic)
        name, cumulative = self.name, temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
        rate_name = f"{name}.rate"
        for dp in data.data_points:
            found = self._number_point(dp, tag)
            if not found:
                continue
            stream, value = found
            start, t_ns = dp.start_time_unix_nano, dp.time_unix_nano
            t = t_ns / _NS
            if not monotonic:
                stream.observe(t_ns)
                if not cumulative:
                    stream.total += value
                    value = stream.total
                self.derivation.value(self.node, name, "sum", stream, t=t, value=value)
                continue
            if cumulative:
                moved = stream.counter(start, t_ns, value, self.origin.since)
            else:
                seconds = stream.delta_seconds(start, t_ns)
                moved = None if seconds is None else (value, seconds)
            if moved and moved[1] > 0:
                rate = moved[0] / moved[1]
                self.derivation.value(self.node, rate_name, "sum", stream, t=t, value=rate)

    def histogram(self) -> None:
        data = self.metric.histogram
        temporality = data.aggregation_temporality
        lookup = self.store._bounds.get
        last: tuple[float, ...] | None = None
        bounds: Floats | str = ""
        for dp in data.data_points:
            wanted = tuple(dp.explicit_bounds)
            if wanted != last:  # the points of a metric nearly always share their bounds
                last, bounds = wanted, lookup(wanted)
            self._histogram_point(dp, points.explicit(dp, bounds), temporality)

    def exponential_histogram(self) -> None:
        data = self.metric.exponential_histogram
        for dp in data.data_points:
            self._histogram_point(dp, points.exponential(dp), data.aggregation_temporality)

    def summary(self) -> None:
        for dp in self.metric.summary.data_points:
            self._histogram_point(dp, points.summary(dp), AGGREGATION_TEMPORALITY_CUMULATIVE)

    def _number_point(self, dp: NumberDataPoint, tag: Hashable) -> tuple[Stream, float] | None:
        """Validate a number point; return its stream and value in base units, if new."""
        value = points.number(dp)
        reason = value if isinstance(value, str) else None
        stream = self._checked(dp, tag, reason, self.store._keys.key(dp.attributes))
        if stream is None or isinstance(value, str):
            return None
        return stream, value * self.scale

    def _checked(
        self, dp: points.AnyPoint, tag: Hashable, reason: str | None, attrs: AttrKey
    ) -> Stream | None:
        """Count the point; return its stream when it is valid, recorded and newer than the last."""
        if reason is not None:
            self.export.reject(self.metric.name, reason)
            return None
        t = dp.time_unix_nano
        self.origin.latest = max(self.origin.latest, t)
        key = (self.origin.key, self.name, self.unit, tag, attrs)
        if dp.flags & _NO_RECORDED_VALUE:
            # The stream went stale: forget it, so that its next point is a fresh baseline.
            self.store._forget(key)
            self.export.accepted += 1
            return None
        stream = self.store._streams.get(key)
        if stream is not None:  # the common case, inlined: a known stream
            stream.seen = self.export.received_at
        else:
            stream = self.store._stream(key, self.export.received_at)
        if stream is None:
            self.export.reject(self.metric.name, "too many streams")
            return None
        self.export.accepted += 1
        if not stream.is_new(t):
            self.export.duplicates += 1
            return None
        return stream

    def _histogram_point(
        self, dp: points.AnyPoint, point: HistogramPoint | str, temporality: int
    ) -> None:
        if temporality not in _TEMPORALITIES:
            point = "aggregation temporality unspecified"
        if isinstance(point, str):
            self.export.reject(self.name, point)
            return
        attrs = self.store._keys.key(dp.attributes)
        stream = self._checked(dp, _HISTOGRAM_TAGS[temporality], None, attrs)
        if stream is None:
            return
        if temporality == AGGREGATION_TEMPORALITY_CUMULATIVE:
            interval = stream.histogram(point, self.origin.since)
        else:
            seconds = stream.delta_seconds(point.start, point.t)
            interval = None if seconds is None else interval_of(point, seconds)
        if interval is None:
            return
        names = self.names
        failed = stream.failed
        if failed is None:  # a function of the stream's identity: computed once per stream
            failed = stream.failed = names.errors is not None and is_error(dict(attrs))
        self.derivation.histogram(
            self.node,
            names,
            stream,
            t=point.t / _NS,
            interval=interval,
            scale=self.scale,
            failed=failed,
        )


def _s(nanos: int) -> float:
    return nanos / _NS
