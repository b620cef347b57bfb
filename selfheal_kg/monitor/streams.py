"""Per-stream state: from cumulative or delta points to per-interval increases.

Spec: https://opentelemetry.io/docs/specs/otel/metrics/data-model/#sums (temporality, resets).
A cumulative stream is reset when its start time changes or a value drops; the first point of
a stream only sets the baseline. A point not newer than the last one seen is a duplicate (a
retried export) or out of order, and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from selfheal_kg.monitor.histograms import Buckets, ExpBuckets, exponential_to_explicit

_NS = 1e9  # nanoseconds per second


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and one is built per point.
# Never mutated after construction.
@dataclass(slots=True)
class HistogramPoint:
    """A histogram point in base units; ``exp`` set for exponential histograms.

    For an exponential point ``buckets`` is ``None`` until the interval is derived, and
    ``low_count`` holds the zero bucket plus the negative buckets.
    """

    start: int
    t: int
    count: float
    sum: float | None
    buckets: Buckets | None
    exp: ExpBuckets | None = None
    low_count: float = 0.0


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and one is built per point.
# Never mutated after construction.
@dataclass(slots=True)
class HistogramInterval:
    """What happened in one interval of a histogram stream."""

    seconds: float
    count: float
    sum: float | None
    buckets: Buckets


class Stream:
    """The last point seen of one stream (identity: resource, scope, metric, attributes)."""

    __slots__ = ("failed", "last", "seen", "start", "t", "total", "value")

    def __init__(self, seen: float) -> None:
        self.seen = seen
        self.t = -1
        self.start = 0
        self.value = 0.0
        self.total = 0.0
        self.last: HistogramPoint | None = None
        self.failed: bool | None = None  # whether its points count as errors, once known

    def is_new(self, t: int) -> bool:
        """Whether a point at ``t`` is newer than the last one (else: duplicate or stale)."""
        return t > self.t

    def observe(self, t: int) -> None:
        """Record a point of a stream whose value needs no history (gauges)."""
        self.t = t

    def counter(
        self, start: int, t: int, value: float, known_since: int | None
    ) -> tuple[float, float] | None:
        """Advance a cumulative counter; return (increase, seconds), ``None`` for a baseline.

        ``known_since`` is when the stream's resource and scope last exported before this
        export (see :func:`_counted_from`).
        """
        previous, previous_start, previous_value = self.t, self.start, self.value
        self.start, self.t, self.value = start, t, value
        begin = _counted_from(start, previous_start, previous, known_since)
        if begin == _BASELINE:
            return None
        if begin is not None:
            return value, (t - begin) / _NS
        if value < previous_value:
            return value, (t - previous) / _NS
        return value - previous_value, (t - previous) / _NS

    def delta_seconds(self, start: int, t: int) -> float | None:
        """Return the length of a delta point's interval, ``None`` when it is unknown."""
        previous = self.t
        self.t = t
        if 0 < start < t:
            return (t - start) / _NS
        return (t - previous) / _NS if previous > 0 else None

    def histogram(self, point: HistogramPoint, known_since: int | None) -> HistogramInterval | None:
        """Advance a cumulative histogram; return the interval, ``None`` for a baseline."""
        last, previous = self.last, self.t
        self.last, self.t, self.start = point, point.t, point.start
        begin = _counted_from(point.start, last.start if last else 0, previous, known_since)
        if begin == _BASELINE:
            return None
        if begin is not None:
            return interval_of(point, (point.t - begin) / _NS)
        if last is None:  # a continuation always has a previous point
            return None
        # A drop without a new start time is a reset since the previous point.
        return _difference(point, last) or interval_of(point, (point.t - previous) / _NS)


_BASELINE: Final = -1


def _counted_from(
    start: int, previous_start: int, previous: int, known_since: int | None
) -> int | None:
    """Return since when a cumulative point counts from zero; ``None``: it continues.

    - A stream's first point is only a baseline, unless its resource and scope exported
      before (``known_since``): SDKs export every cumulative stream at each collection, so
      a stream new there began after that export, and all of its value is new. It counts
      over the same interval as its siblings, so that their rates add up.
    - A new start time after the previous point is a restart, counted from ``start``.
    - A start time that moved but not past the previous point cannot be explained by a
      restart (two writers of one stream, or a lost baseline): :data:`_BASELINE` again.
    """
    if previous < 0:
        return _BASELINE if known_since is None else known_since
    if start in (previous_start, 0):
        return None
    return start if start >= previous else _BASELINE


def interval_of(point: HistogramPoint, seconds: float) -> HistogramInterval | None:
    """Return a delta point (or a point counted from a reset) as an interval."""
    if seconds <= 0:
        return None
    buckets = point.buckets
    if buckets is None and point.exp is not None:
        buckets = exponential_to_explicit(point.exp, point.low_count)
    if buckets is None:
        return None
    return HistogramInterval(seconds, point.count, point.sum, buckets)


def _difference(new: HistogramPoint, old: HistogramPoint) -> HistogramInterval | None:
    count = new.count - old.count
    if count < 0:
        return None
    total = None if new.sum is None or old.sum is None else new.sum - old.sum
    if new.exp is not None and old.exp is not None:
        positive = new.exp.minus(old.exp)
        low = new.low_count - old.low_count
        if low < 0 or bool(np.any(positive.counts < 0)):
            return None
        buckets = exponential_to_explicit(positive, low)
    elif new.buckets is not None and old.buckets is not None:
        same = new.buckets.bounds is old.buckets.bounds  # shared when equal (see SeriesStore)
        if not (same or np.array_equal(new.buckets.bounds, old.buckets.bounds)):
            return None
        counts = new.buckets.counts - old.buckets.counts
        # argmin then one read is several times faster than min() on short arrays
        if counts.size and counts[counts.argmin()] < 0:
            return None
        buckets = Buckets(new.buckets.bounds, counts)
    else:
        return None
    return HistogramInterval((new.t - old.t) / _NS, count, total, buckets)
