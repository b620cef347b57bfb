"""EWMA detector: exponentially weighted mean and variance per series.

Cheaper than :mod:`robust_z` (O(1) state per series, no window) but not robust: an outlier
inflates the variance for a while. The value is scored against the state *before* it is
folded in::

    z     = (x - mean) / max(sqrt(var), rel_floor * |mean|, abs_floor)
    score = clip((|z| - z_low) / (z_full - z_low), 0, 1)
    mean += alpha * (x - mean);  var = (1 - alpha) * (var + alpha * (x - mean_old)^2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfheal_kg.detect.base import FloatArray, Int8Array, Scores, SeriesIndex, as_values, grow
from selfheal_kg.detect.robust_z import z_to_score


class Ewma:
    """Exponentially weighted mean/variance detector, vectorised over all series.

    Args:
        alpha: weight of the newest value (about 2 / (span + 1)).
        min_points: values needed before a series is scored.
        z_low, z_full: where the score starts rising and where it reaches 1.
    """

    name = "ewma"

    def __init__(
        self,
        alpha: float = 0.05,
        min_points: int = 8,
        z_full: float = 6.0,
        *,
        z_low: float = 3.0,
        rel_floor: float = 0.01,
        abs_floor: float = 1e-9,
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError("need 0 < alpha < 1")
        self.alpha = alpha
        self.min_points = min_points
        self.z_low = z_low
        self.z_full = z_full
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self._index = SeriesIndex()
        self._mean: FloatArray = np.zeros(0)
        self._var: FloatArray = np.zeros(0)
        self._count = np.zeros(0, dtype=np.intp)

    def forget(self, series: str) -> None:
        """Drop the baseline of ``series``: if it comes back, it warms up again."""
        self._index.forget(series)

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> Scores:
        """Score each value against its series' EWMA state, then fold it in."""
        vals = as_values(values, len(series))
        rows = self._index.rows(series)
        if len(np.unique(rows)) != len(rows):
            raise ValueError("a series appears twice in one update")
        self._grow()
        n = len(series)
        score, baseline = np.zeros(n), np.full(n, np.nan)
        direction: Int8Array = np.zeros(n, dtype=np.int8)
        present = ~np.isnan(vals)
        ready = present & (self._count[rows] >= self.min_points)
        r, x = rows[ready], vals[ready]
        mean = self._mean[r]
        scale = np.maximum(
            np.maximum(np.sqrt(self._var[r]), self.rel_floor * np.abs(mean)), self.abs_floor
        )
        z = (x - mean) / scale
        score[ready] = z_to_score(z, self.z_low, self.z_full)
        direction[ready] = np.sign(z).astype(np.int8)
        baseline[ready] = mean
        self._fold(rows[present], vals[present])
        return Scores(score=score, direction=direction, baseline=baseline)

    def _grow(self) -> None:
        size = len(self._index)
        self._mean = grow(self._mean, size, 0.0)
        self._var = grow(self._var, size, 0.0)
        self._count = grow(self._count, size, 0)

    def _fold(self, rows: np.ndarray, x: FloatArray) -> None:
        first = self._count[rows] == 0
        mean = np.where(first, x, self._mean[rows])
        diff = x - mean
        a = self.alpha
        self._mean[rows] = mean + a * diff
        self._var[rows] = (1 - a) * (self._var[rows] + a * diff * diff)
        self._count[rows] += 1
