"""OTLP data points, validated and read into one shape (or the reason they are refused).

Spec: https://opentelemetry.io/docs/specs/otel/metrics/data-model/#metric-points. A refused
point is counted in ``partial_success``, never stored.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    NumberDataPoint,
    SummaryDataPoint,
)

from selfheal_kg.monitor.histograms import Buckets, ExpBuckets, Floats
from selfheal_kg.monitor.streams import HistogramPoint

AnyPoint = NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint | SummaryDataPoint

_MAX_BOUND_SETS: Final = 1024
_BAD_BOUNDS: Final = "explicit_bounds are not finite and strictly increasing"


class BoundsCache:
    """Histogram bounds as shared read-only arrays: a stream's points nearly always share them."""

    def __init__(self) -> None:
        self._known: dict[tuple[float, ...], Floats | str] = {}

    def get(self, bounds: tuple[float, ...]) -> Floats | str:
        """Return the bounds as an array, or why they are invalid."""
        found = self._known.get(bounds)
        if found is None:
            if len(self._known) >= _MAX_BOUND_SETS:
                self._known.clear()
            array = np.array(bounds, dtype=np.float64)
            array.flags.writeable = False
            valid = bool(np.all(np.isfinite(array)) and np.all(np.diff(array) > 0))
            found = self._known[bounds] = array if valid else _BAD_BOUNDS
        return found


def time_problem(start: int, t: int) -> str | None:
    """Return what is wrong with a point's times, if anything."""
    if t == 0:
        return "time_unix_nano is missing"
    if start > t:
        return "start_time_unix_nano is after time_unix_nano"
    return None


def number(dp: NumberDataPoint) -> float | str:
    """Return a number point's value, or why it is refused."""
    which = dp.WhichOneof("value")
    value = float(dp.as_double if which == "as_double" else dp.as_int)
    reason = time_problem(dp.start_time_unix_nano, dp.time_unix_nano)
    if which is None:
        reason = "point without a value"
    elif not math.isfinite(value):
        reason = f"value {value} is not finite"
    return value if reason is None else reason


def explicit(dp: HistogramDataPoint, bounds: Floats | str) -> HistogramPoint | str:
    """Return an explicit-bucket histogram point (``bounds`` from :class:`BoundsCache`)."""
    start, t = dp.start_time_unix_nano, dp.time_unix_nano
    total = dp.sum if dp.HasField("sum") else None
    reason = time_problem(start, t)
    if reason is None and total is not None and not math.isfinite(total):
        reason = f"sum {total} is not finite"
    if reason is not None or isinstance(bounds, str):
        return reason or str(bounds)
    counts, count = tuple(dp.bucket_counts), dp.count
    if not counts and bounds.size == 0:
        counts = (count,)
    elif len(counts) != bounds.size + 1:
        return (
            f"{len(counts)} bucket_counts for {bounds.size} explicit_bounds "
            f"(expected {bounds.size + 1})"
        )
    elif sum(counts) != count:
        return f"count {count} is not the sum of bucket_counts ({sum(counts)})"
    buckets = Buckets(bounds, np.array(counts, dtype=np.float64))
    return HistogramPoint(start, t, float(count), total, buckets)


def exponential(dp: ExponentialHistogramDataPoint) -> HistogramPoint | str:
    """Return an exponential histogram point (zero and negative buckets as ``low_count``)."""
    positive = np.array(dp.positive.bucket_counts, dtype=np.float64)
    low = float(dp.zero_count) + float(sum(dp.negative.bucket_counts))
    reason = time_problem(dp.start_time_unix_nano, dp.time_unix_nano) or _sum_problem(dp)
    if reason is not None:
        return reason
    if not -10 <= dp.scale <= 20:
        return f"scale {dp.scale} is outside [-10, 20]"
    if positive.sum() + low != dp.count:
        return f"count {dp.count} is not the sum of the buckets ({int(positive.sum() + low)})"
    exp = ExpBuckets(dp.scale, dp.positive.offset, positive)
    return HistogramPoint(
        dp.start_time_unix_nano, dp.time_unix_nano, float(dp.count), _sum(dp), None, exp, low
    )


def summary(dp: SummaryDataPoint) -> HistogramPoint | str:
    """Return a summary point as a histogram without buckets (count and sum only)."""
    reason = time_problem(dp.start_time_unix_nano, dp.time_unix_nano)
    if reason is None and not math.isfinite(dp.sum):
        reason = f"sum {dp.sum} is not finite"
    if reason is not None:
        return reason
    buckets = Buckets(np.empty(0), np.array([float(dp.count)]))
    return HistogramPoint(
        dp.start_time_unix_nano, dp.time_unix_nano, float(dp.count), dp.sum, buckets
    )


def _sum(dp: HistogramDataPoint | ExponentialHistogramDataPoint) -> float | None:
    return dp.sum if dp.HasField("sum") else None


def _sum_problem(dp: HistogramDataPoint | ExponentialHistogramDataPoint) -> str | None:
    total = _sum(dp)
    return None if total is None or math.isfinite(total) else f"sum {total} is not finite"
