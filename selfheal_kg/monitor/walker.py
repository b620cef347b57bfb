"""Walk the points of one OTLP metric: validate them, find their stream, derive series.

Spec: https://opentelemetry.io/docs/specs/otel/metrics/data-model/. The walker works for a
:class:`~selfheal_kg.monitor.series.SeriesStore`, whose streams it reads and creates under
the store's lock; ``Export`` counts what one export did.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    Metric,
    NumberDataPoint,
    SummaryDataPoint,
)

from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor import points
from selfheal_kg.monitor.attributes import AttrKey, is_error, to_base_unit
from selfheal_kg.monitor.attributes import attributes as stream_attrs_of
from selfheal_kg.monitor.derive import OLD_MS_METRICS, Derivation, histogram_names
from selfheal_kg.monitor.histograms import Floats
from selfheal_kg.monitor.streams import HistogramPoint, Stream, interval_of

if TYPE_CHECKING:
    from selfheal_kg.monitor.series import SeriesStore

_NO_RECORDED_VALUE: Final = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK
_MAX_REASONS: Final = 5
_NS: Final = 1e9
_TEMPORALITIES: Final = (AGGREGATION_TEMPORALITY_CUMULATIVE, AGGREGATION_TEMPORALITY_DELTA)
# Shared by every histogram stream key (a tuple per point would also be one per stream).
_QUANTILE_NAMES: Final = {0.5: "p50", 0.9: "p90", 0.95: "p95", 0.99: "p99"}
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


class Export:
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


class Origin:
    """The resource and scope of the metrics being walked."""

    __slots__ = ("key", "latest", "node", "since")

    def __init__(self, node: str, key: Hashable, since: int | None) -> None:
        self.node = node
        self.key = key
        self.since = since  # latest point time of its previous export, if any
        self.latest = 0


class Walker:
    """Walks the points of one metric: validate, find the stream, derive."""

    __slots__ = (
        "derivation", "export", "metric", "name", "names",
        "node", "origin", "scale", "store", "unit",
    )  # fmt: skip

    def __init__(
        self, store: SeriesStore, export: Export, origin: Origin, metric: Metric
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
            stream = self._histogram_point(
                dp, points.summary(dp), AGGREGATION_TEMPORALITY_CUMULATIVE
            )
            if stream is not None:
                self._summary_quantiles(dp)

    def _summary_quantiles(self, dp: SummaryDataPoint) -> None:
        """Keep a summary's own quantiles as per-stream series (they cannot be aggregated)."""
        attrs = sorted(stream_attrs_of(dp.attributes).items())
        label = "|" + ",".join(f"{k}={v!s}" for k, v in attrs)
        for qv in dp.quantile_values:
            name = _QUANTILE_NAMES.get(round(qv.quantile, 4))
            if name is None or not math.isfinite(qv.value):
                continue
            metric = f"{self.name}.{name}"
            self.store._append(  # the walk runs under the store's lock already
                DerivedPoint(
                    f"{self.node}|{metric}{label}",
                    self.node,
                    metric,
                    dp.time_unix_nano / _NS,
                    qv.value * self.scale,
                )
            )

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
    ) -> Stream | None:
        """Derive one histogram-like point; return its stream when it was new and valid."""
        if temporality not in _TEMPORALITIES:
            point = "aggregation temporality unspecified"
        if isinstance(point, str):
            self.export.reject(self.name, point)
            return None
        attrs = self.store._keys.key(dp.attributes)
        stream = self._checked(dp, _HISTOGRAM_TAGS[temporality], None, attrs)
        if stream is None:
            return None
        if temporality == AGGREGATION_TEMPORALITY_CUMULATIVE:
            interval = stream.histogram(point, self.origin.since)
        else:
            seconds = stream.delta_seconds(point.start, point.t)
            interval = None if seconds is None else interval_of(point, seconds)
        if interval is None:
            return stream
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
        return stream


def _s(nanos: int) -> float:
    return nanos / _NS
