"""Bucket arithmetic: quantiles, merging and exponential-to-explicit conversion.

Explicit buckets follow OTLP: ``counts`` has one more entry than ``bounds`` and bucket ``i`` is
``(bounds[i-1], bounds[i]]``, the last one reaching +Inf. Quantiles interpolate linearly inside
a bucket, as Prometheus' ``histogram_quantile`` does. Exponential buckets:
https://opentelemetry.io/docs/specs/otel/metrics/data-model/#exponentialhistogram
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and one is built per point.
# Never mutated after construction.
@dataclass(slots=True)
class Buckets:
    """Explicit bucket counts over ``bounds`` (in base units)."""

    bounds: Floats
    counts: Floats

    @property
    def total(self) -> float:
        """Return the number of observations."""
        return float(self.counts.sum())


def quantile(q: float, buckets: Buckets) -> float | None:
    """Return the ``q``-quantile, or ``None`` when there is nothing to interpolate.

    The first bucket starts at 0 when its upper bound is positive; a rank that falls in the
    +Inf bucket returns the highest finite bound (both as Prometheus does).
    """
    bounds, counts = buckets.bounds, buckets.counts
    total = float(counts.sum())
    if total <= 0 or bounds.size == 0:
        return None
    rank = q * total
    cumulative = np.cumsum(counts)
    i = int(np.searchsorted(cumulative, rank, side="left"))
    if i >= bounds.size:
        return float(bounds[-1])
    upper = float(bounds[i])
    if i == 0:
        lower = 0.0 if upper > 0 else upper
        below = 0.0
    else:
        lower = float(bounds[i - 1])
        below = float(cumulative[i - 1])
    inside = float(counts[i])
    if inside <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / inside


def merge(parts: Sequence[Buckets]) -> Buckets:
    """Return the sum of several bucket sets, re-bucketing onto the union of their bounds.

    Counts are spread linearly inside each bucket, the same assumption the quantile makes,
    so merging then taking a quantile is consistent with taking it on either part.
    """
    if not parts:
        return Buckets(np.empty(0), np.zeros(1))
    first = parts[0]
    if all(p.bounds is first.bounds or np.array_equal(p.bounds, first.bounds) for p in parts[1:]):
        return Buckets(first.bounds, np.sum([p.counts for p in parts], axis=0))
    union = np.unique(np.concatenate([p.bounds for p in parts]))
    cumulative = np.zeros(union.size)
    total = 0.0
    for part in parts:
        total += part.total
        if part.bounds.size == 0:
            continue
        start = 0.0 if part.bounds[0] > 0 else float(part.bounds[0])
        xs = np.concatenate([[start], part.bounds])
        ys = np.concatenate([[0.0], np.cumsum(part.counts[:-1])])
        cumulative += np.interp(union, xs, ys, left=0.0, right=ys[-1])
    counts = np.diff(np.concatenate([[0.0], cumulative, [total]]))
    return Buckets(union, counts)


@dataclass(frozen=True, slots=True)
class ExpBuckets:
    """One side (positive or negative) of an exponential histogram at ``scale``."""

    scale: int
    offset: int
    counts: Floats

    def downscale(self, scale: int) -> ExpBuckets:
        """Return these buckets merged down to a coarser ``scale`` (bucket k → k >> Δscale)."""
        shift = self.scale - scale
        if shift <= 0 or self.counts.size == 0:
            return ExpBuckets(scale, self.offset, self.counts)
        index = (self.offset + np.arange(self.counts.size)) >> shift
        offset = int(index[0])
        merged = np.bincount(index - offset, weights=self.counts).astype(np.float64)
        return ExpBuckets(scale, offset, merged)

    def minus(self, other: ExpBuckets) -> ExpBuckets:
        """Return ``self - other`` (bucket-wise, after bringing both to the coarser scale)."""
        scale = min(self.scale, other.scale)
        a, b = self.downscale(scale), other.downscale(scale)
        if a.counts.size == 0 and b.counts.size == 0:
            return ExpBuckets(scale, 0, np.zeros(0))
        offset = min(_offset(a), _offset(b))
        size = max(_end(a), _end(b)) - offset
        dense = np.zeros(size)
        dense[a.offset - offset : a.offset - offset + a.counts.size] += a.counts
        dense[b.offset - offset : b.offset - offset + b.counts.size] -= b.counts
        return ExpBuckets(scale, offset, dense)


def _offset(b: ExpBuckets) -> int:
    return b.offset if b.counts.size else 2**62


def _end(b: ExpBuckets) -> int:
    return b.offset + b.counts.size if b.counts.size else -(2**62)


def exponential_to_explicit(positive: ExpBuckets, low_count: float) -> Buckets:
    """Return explicit buckets equal to the positive exponential buckets.

    ``low_count`` (zero bucket plus negative values) goes into the first bucket: durations and
    sizes are never negative, and the quantile interpolation starts that bucket at 0.
    """
    if positive.counts.size == 0:
        return Buckets(np.empty(0), np.array([low_count]))
    base = math.pow(2.0, math.pow(2.0, -positive.scale))
    exponents = positive.offset + np.arange(positive.counts.size + 1, dtype=np.float64)
    bounds = np.power(base, exponents)
    counts = np.concatenate([[low_count], positive.counts, [0.0]])
    return Buckets(bounds, counts)
