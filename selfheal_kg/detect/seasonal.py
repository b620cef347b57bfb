"""Seasonal baseline: a per-series profile by phase of a period, robust to the anomalies.

The phase of a point is ``round(t / step) mod period`` (``step`` in seconds, learned from the
update times unless given; ``period`` in points, 288 = one day at 5 minutes). Per series and
phase the profile is an exponentially weighted mean across cycles; the expected value is the
mean of the profile at the phase and its two neighbours (less noise, no visible lag at the
periods this is meant for). The residual scale is an EWMA of |residual| (times 1.2533, which makes
it a standard deviation for Gaussian noise)::

    expected = mean(profile[p-1], profile[p], profile[p+1])
    z        = (x - expected) / max(1.2533 * mean|r|, rel_floor * |expected|, abs_floor)
    score    = clip((|z| - z_low) / (z_full - z_low), 0, 1)

Values are winsorised to expected ± ``clip`` scales before they update the profile and the
scale, so one anomalous cycle barely moves them. Until a series has two full periods of
history it is scored by a sliding robust z (``fallback``); in the ensemble, where robust z is
a member of its own, ``fallback=False`` scores those series 0 instead.

For a weekly profile pass ``period=2016`` (5-minute points): memory is period floats per series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfheal_kg.detect.base import (
    Cadence,
    FloatArray,
    Int8Array,
    IntArray,
    Scores,
    SeriesIndex,
    as_values,
    grow,
)
from selfheal_kg.detect.robust_z import RobustZ, z_to_score

MEAN_ABS_TO_SIGMA = 1.2533


class Seasonal:
    """Per-phase profile detector with a robust z fallback, vectorised over all series.

    Args:
        period: points per season (288 = daily at a 5-minute step).
        step: seconds between points; ``None`` learns it from the first two updates.
        alpha: weight of the newest cycle in the profile.
        beta: weight of the newest residual in the scale.
        z_low, z_full: where the score starts rising and where it reaches 1.
        clip: winsorising bound, in scales, for what the profile learns.
        fallback: score short histories with robust z (else 0).
    """

    name = "seasonal"

    def __init__(
        self,
        period: int = 288,
        step: float | None = None,
        *,
        alpha: float = 0.3,
        beta: float = 0.02,
        z_low: float = 3.0,
        z_full: float = 5.0,
        clip: float = 4.0,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
        fallback: bool = True,
    ) -> None:
        if period < 3:
            raise ValueError("need period >= 3")
        self.period = period
        self.alpha, self.beta, self.clip = alpha, beta, clip
        self.z_low, self.z_full = z_low, z_full
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        self._cadence = Cadence(step)
        self._fallback = RobustZ() if fallback else None
        self._index = SeriesIndex()
        self._profile: FloatArray = np.full((0, period), np.nan)
        self._scale: FloatArray = np.zeros(0)
        self._count = np.zeros(0, dtype=np.intp)

    def forget(self, series: str) -> None:
        """Drop the profile of ``series`` (and its fallback's window): it warms up again."""
        self._index.forget(series)
        if self._fallback is not None:
            self._fallback.forget(series)

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> Scores:
        """Score each value against its series' profile at this phase, then learn from it."""
        vals = as_values(values, len(series))
        rows = self._rows(series)
        n = len(series)
        fb = self._fallback.update(t, series, vals) if self._fallback else None
        score = fb.score.copy() if fb else np.zeros(n)
        direction: Int8Array = fb.direction.copy() if fb else np.zeros(n, dtype=np.int8)
        baseline = fb.baseline.copy() if fb else np.full(n, np.nan)
        step = self._cadence.observe(t)
        present = ~np.isnan(vals)
        if step is None:
            return Scores(score=score, direction=direction, baseline=baseline)
        phase = round(t / step) % self.period
        expected = self._expected(rows, phase)
        resid = vals - expected
        scale = np.maximum(
            np.maximum(MEAN_ABS_TO_SIGMA * self._scale[rows], self.rel_floor * np.abs(expected)),
            self.abs_floor,
        )
        ready = present & (self._count[rows] >= 2 * self.period) & ~np.isnan(expected)
        z = resid / scale
        score[ready] = z_to_score(z[ready], self.z_low, self.z_full)
        direction[ready] = np.sign(z[ready]).astype(np.int8)
        baseline[ready] = expected[ready]
        self._learn(rows[present], phase, vals[present], expected[present], scale[present])
        return Scores(score=score, direction=direction, baseline=baseline)

    def _rows(self, series: Sequence[str]) -> IntArray:
        rows = self._index.rows(series)
        if len(np.unique(rows)) != len(rows):
            raise ValueError("a series appears twice in one update")
        size = len(self._index)
        self._profile = grow(self._profile, size, np.nan)
        self._scale = grow(self._scale, size, np.nan)
        self._count = grow(self._count, size, 0)
        return rows

    def _expected(self, rows: IntArray, phase: int) -> FloatArray:
        cols = np.array([phase - 1, phase, phase + 1]) % self.period
        near = self._profile[rows[:, None], cols[None, :]]
        out = np.full(len(rows), np.nan)
        known = ~np.isnan(near).all(axis=1)
        out[known] = np.nanmean(near[known], axis=1)
        return out

    def _learn(
        self, rows: IntArray, phase: int, x: FloatArray, expected: FloatArray, scale: FloatArray
    ) -> None:
        has_scale = ~np.isnan(self._scale[rows]) & ~np.isnan(expected)
        bound = self.clip * scale
        # Winsorise: an anomaly teaches the profile no more than a clip-sigma deviation.
        xw = np.where(has_scale, np.clip(x, expected - bound, expected + bound), x)
        old = self._profile[rows, phase]
        self._profile[rows, phase] = np.where(
            np.isnan(old), xw, old + self.alpha * (xw - old)
        )
        resid = np.abs(xw - expected)
        old_s = self._scale[rows]
        self._scale[rows] = np.where(
            np.isnan(expected), old_s,
            np.where(np.isnan(old_s), resid, old_s + self.beta * (resid - old_s)),
        )
        self._count[rows] += 1
