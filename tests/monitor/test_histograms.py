"""Bucket arithmetic: Prometheus-like quantiles, merging, exponential buckets."""

from __future__ import annotations

import numpy as np
import pytest

from selfheal_kg.monitor.histograms import (
    Buckets,
    ExpBuckets,
    exponential_to_explicit,
    merge,
    quantile,
)


def _b(bounds: list[float], counts: list[float]) -> Buckets:
    return Buckets(np.array(bounds, dtype=float), np.array(counts, dtype=float))


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 10 in (0, 1], 10 in (1, 2]: the median is the top of the first bucket, p75 half-way up
    buckets = _b([1, 2], [10, 10, 0])
    assert quantile(0.5, buckets) == pytest.approx(1.0)
    assert quantile(0.75, buckets) == pytest.approx(1.5)
    assert quantile(0.25, buckets) == pytest.approx(0.5)


def test_quantile_in_the_inf_bucket_is_the_highest_bound() -> None:
    assert quantile(0.95, _b([1, 2], [1, 1, 8])) == 2.0


def test_quantile_of_nothing() -> None:
    assert quantile(0.95, _b([1, 2], [0, 0, 0])) is None
    assert quantile(0.95, _b([], [5])) is None


def test_merge_same_bounds_adds_counts() -> None:
    merged = merge([_b([1, 2], [1, 2, 3]), _b([1, 2], [1, 0, 1])])
    assert list(merged.counts) == [2, 2, 4]


def test_merge_different_bounds_spreads_linearly() -> None:
    merged = merge([_b([2], [4, 1]), _b([1, 2], [1, 1, 0])])
    assert list(merged.bounds) == [1, 2]
    # the first histogram's 4 in (0, 2] split evenly over (0, 1] and (1, 2]
    assert list(merged.counts) == pytest.approx([3, 3, 1])
    assert merged.total == pytest.approx(7)


def test_downscale_and_minus() -> None:
    fine = ExpBuckets(2, -2, np.array([1.0, 2, 3, 4, 5]))
    coarse = fine.downscale(1)
    assert (coarse.offset, list(coarse.counts)) == (-1, [3.0, 7.0, 5.0])
    diff = ExpBuckets(1, -1, np.array([4.0, 7, 5, 1])).minus(fine)
    assert (diff.offset, list(diff.counts)) == (-1, [1.0, 0.0, 0.0, 1.0])


def test_exponential_to_explicit_bounds() -> None:
    explicit = exponential_to_explicit(ExpBuckets(0, 1, np.array([3.0, 4.0])), low_count=2)
    assert list(explicit.bounds) == [2.0, 4.0, 8.0]
    assert list(explicit.counts) == [2.0, 3.0, 4.0, 0.0]
    assert list(exponential_to_explicit(ExpBuckets(0, 0, np.zeros(0)), 5).counts) == [5.0]
