"""Robust z-score detector: median and MAD over a sliding window per series.

For each series the last ``window`` values sit in a ring buffer (one row of a 2-D array).
A new value ``x`` is scored against the buffer *before* it is added, so the point being
scored is never part of its own baseline::

    med   = median(buffer)
    scale = max(1.4826 * MAD(buffer), rel_floor * |med|, abs_floor)
    z     = (x - med) / scale
    score = clip((|z| - z_low) / (z_full - z_low), 0, 1)

1.4826 makes the MAD a consistent estimate of the standard deviation for Gaussian noise.
The floors keep a flat series (MAD = 0) from turning the smallest wiggle into an alarm.
A series scores 0 until it holds ``min_points`` values.

Defaults (window 60, z_low 2.5, z_full 4.0) were tuned on the Merlion synthetic set
(``bench/merlion_report.py``): its anomalies are long, moderate shifts of 2-4 noise standard
deviations, which z_full 6 missed almost entirely. ``rel_floor`` 0.05 is a minimum effect
size: a series must move by more than ~12 % of its median (2.5 x 5 %) before it scores at all.
Steady production traffic (a paced load, a fixed request rate) has a MAD near zero, and
without this floor a 5 % wobble scored 1.0 in the demo; on Merlion the floor raised
point-adjusted precision from 0.57 to 0.72 at the same F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfheal_kg.detect.base import FloatArray, Int8Array, Scores, SeriesIndex, as_values, grow

MAD_TO_SIGMA = 1.4826


def z_to_score(z: FloatArray, z_low: float, z_full: float) -> FloatArray:
    """Map robust z-scores to [0, 1]: 0 up to ``z_low``, linear, 1 from ``z_full``."""
    return np.clip((np.abs(z) - z_low) / (z_full - z_low), 0.0, 1.0)


def robust_scale(
    med: FloatArray, mad: FloatArray, rel_floor: float, abs_floor: float
) -> FloatArray:
    """Return the floored robust standard deviation ``max(1.4826 MAD, rel|med|, abs)``."""
    return np.maximum(np.maximum(MAD_TO_SIGMA * mad, rel_floor * np.abs(med)), abs_floor)


class RobustZ:
    """Median/MAD detector over a sliding window, vectorised over all series.

    Args:
        window: values kept per series (the baseline).
        min_points: values needed before a series is scored.
        z_low: |z| at which the score starts rising above 0.
        z_full: |z| at which the score reaches 1.
        rel_floor: scale floor as a fraction of |median|.
        abs_floor: absolute scale floor.
    """

    name = "robust_z"

    def __init__(
        self,
        window: int = 60,
        min_points: int = 8,
        z_full: float = 4.0,
        *,
        z_low: float = 2.5,
        rel_floor: float = 0.05,
        abs_floor: float = 1e-9,
    ) -> None:
        if not 2 <= min_points <= window:
            raise ValueError("need 2 <= min_points <= window")
        if not 0 <= z_low < z_full:
            raise ValueError("need 0 <= z_low < z_full")
        self.window = window
        self.min_points = min_points
        self.z_low = z_low
        self.z_full = z_full
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self._index = SeriesIndex()
        self._buf: FloatArray = np.full((0, window), np.nan)
        self._pos = np.zeros(0, dtype=np.intp)
        self._count = np.zeros(0, dtype=np.intp)

    def forget(self, series: str) -> None:
        """Drop the baseline of ``series``: if it comes back, it warms up again."""
        self._index.forget(series)

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> Scores:
        """Score each value against its series' window, then push it into the window."""
        vals = as_values(values, len(series))
        rows = self._rows(series)
        n = len(series)
        score = np.zeros(n)
        direction: Int8Array = np.zeros(n, dtype=np.int8)
        baseline = np.full(n, np.nan)
        present = ~np.isnan(vals)
        ready = present & (self._count[rows] >= self.min_points)
        if ready.any():
            s, d, b = self._score(rows[ready], vals[ready])
            score[ready], direction[ready], baseline[ready] = s, d, b
        self._push(rows[present], vals[present])
        return Scores(score=score, direction=direction, baseline=baseline)

    def _rows(self, series: Sequence[str]) -> np.ndarray:
        rows = self._index.rows(series)
        if len(np.unique(rows)) != len(rows):
            raise ValueError("a series appears twice in one update")
        size = len(self._index)
        self._buf = grow(self._buf, size, np.nan)
        self._pos = grow(self._pos, size, 0)
        self._count = grow(self._count, size, 0)
        return rows

    def _score(
        self, rows: np.ndarray, vals: FloatArray
    ) -> tuple[FloatArray, Int8Array, FloatArray]:
        window = self._buf[rows]
        med = np.nanmedian(window, axis=1)
        mad = np.nanmedian(np.abs(window - med[:, None]), axis=1)
        z = (vals - med) / robust_scale(med, mad, self.rel_floor, self.abs_floor)
        direction = np.sign(z).astype(np.int8)
        return z_to_score(z, self.z_low, self.z_full), direction, med

    def _push(self, rows: np.ndarray, vals: FloatArray) -> None:
        self._buf[rows, self._pos[rows]] = vals
        self._pos[rows] = (self._pos[rows] + 1) % self.window
        self._count[rows] = np.minimum(self._count[rows] + 1, self.window)
