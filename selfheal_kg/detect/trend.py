"""Trend extrapolation for saturating resources: how soon does a series reach its capacity?

Per series with a capacity, the last ``window`` values (a ring) give a robust slope: the
median of the ``window/2`` slopes between points half a window apart (a Theil-Sen estimator
restricted to those pairs, O(window) instead of O(window²)). The slope counts only when it is
significant: above ``sig`` (4) times its standard error (1.2533 · 1.4826 · MAD of the
pair slopes / sqrt(window/2)). The level is the fitted line at the newest point::

    tte   = (capacity - level) / slope   (seconds; inf when not rising significantly,
                                          0 once the level is at or above capacity)
    score = 1 if tte <= horizon, 0 if tte >= far, linear in between

Capacities: ``capacity(series)`` returns the capacity of a series or ``None`` (not a
resource: score 0). The default gives 1.0 to ratio-valued resource metrics (ids ending in
``utilization`` or ``usage_ratio``, the OpenTelemetry semantic conventions for saturation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from selfheal_kg.detect.base import (
    Cadence,
    FloatArray,
    Int8Array,
    IntArray,
    Scores,
    as_values,
    grow,
)
from selfheal_kg.detect.ring import Rings
from selfheal_kg.detect.robust_z import MAD_TO_SIGMA

RATIO_SUFFIXES = ("utilization", "usage_ratio")
MEDIAN_SE = 1.2533


def ratio_capacity(series: str) -> float | None:
    """Return 1.0 for ratio-valued resource series (utilisation), else ``None``."""
    return 1.0 if series.endswith(RATIO_SUFFIXES) else None


class Trend:
    """Time-to-exhaustion detector, vectorised over all series.

    Args:
        window: values per series the slope is fitted on.
        capacity: series id → capacity, or ``None`` when the series is not a resource.
        horizon: seconds to exhaustion at or below which the score is 1 (1 h).
        far: seconds to exhaustion at or above which the score is 0 (6 h).
        step: seconds between points; ``None`` learns it from the update times.
        sig: slope significance, in standard errors.
        min_points: values needed before a series is scored.
    """

    name = "trend"

    def __init__(
        self,
        window: int = 60,
        capacity: Callable[[str], float | None] = ratio_capacity,
        horizon: float = 3600.0,
        far: float = 6 * 3600.0,
        *,
        step: float | None = None,
        sig: float = 4.0,
        min_points: int = 32,
    ) -> None:
        if not 0 < horizon < far:
            raise ValueError("need 0 < horizon < far")
        if not max(4, window // 2 + 2) <= min_points <= window:
            # fewer points leave no complete half-window pair to fit a slope on
            raise ValueError("need window // 2 + 2 <= min_points <= window")
        self.capacity, self.horizon, self.far = capacity, horizon, far
        self.sig, self.min_points = sig, min_points
        self._cadence = Cadence(step)
        self._rings = Rings(window)
        self._cap: FloatArray = np.zeros(0)
        self._tte: FloatArray = np.zeros(0)

    def forget(self, series: str) -> None:
        """Drop the history of ``series``: if it comes back, it warms up again."""
        self._rings.index.forget(series)

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> Scores:
        """Push each value, then score its series by how soon it reaches capacity."""
        vals = as_values(values, len(series))
        rows = self._rows(series)
        step = self._cadence.observe(t)
        present = ~np.isnan(vals)
        self._rings.push(rows[present], vals[present])
        n = len(series)
        score, baseline = np.zeros(n), np.full(n, np.nan)
        direction: Int8Array = np.zeros(n, dtype=np.int8)
        ready = present & ~np.isnan(self._cap[rows]) & (self._rings.count[rows] >= self.min_points)
        if step is None or not ready.any():
            return Scores(score=score, direction=direction, baseline=baseline)
        r = rows[ready]
        level, tte = self._fit(r, step)
        self._tte[r] = tte
        score[ready] = np.clip((self.far - tte) / (self.far - self.horizon), 0.0, 1.0)
        direction[ready] = np.where(np.isfinite(tte), 1, 0).astype(np.int8)
        baseline[ready] = level
        return Scores(score=score, direction=direction, baseline=baseline)

    def time_to_exhaustion(self, series: Sequence[str]) -> FloatArray:
        """Return seconds until each series reaches its capacity, as of its latest update.

        ``inf``: not rising significantly; ``0``: at or above capacity; NaN: unknown series,
        no capacity, or not enough history yet.
        """
        idx = self._rings.index
        out = np.full(len(series), np.nan)
        known = [i for i, s in enumerate(series) if s in idx.known()]
        if known:
            rows = idx.rows([series[i] for i in known])
            out[known] = self._tte[rows]
        return out

    def _rows(self, series: Sequence[str]) -> IntArray:
        before = len(self._rings.index)
        rows = self._rings.rows(series)
        size = len(self._rings.index)
        self._cap = grow(self._cap, size, np.nan)
        self._tte = grow(self._tte, size, np.nan)
        for i in np.flatnonzero(rows >= before).tolist():
            cap = self.capacity(series[i])
            self._cap[rows[i]] = np.nan if cap is None else cap
        return rows

    def _fit(self, rows: IntArray, step: float) -> tuple[FloatArray, FloatArray]:
        """Return (level at the newest point, seconds to capacity) of each row."""
        x = self._rings.ordered(rows)
        w = x.shape[1]
        half = w // 2
        pair = (x[:, half:] - x[:, : w - half]) / half
        slope = np.nanmedian(pair, axis=1)
        spread = np.nanmedian(np.abs(pair - slope[:, None]), axis=1)
        pairs = np.maximum(np.sum(~np.isnan(pair), axis=1), 1)
        # the median of n slopes has 1.2533 times the standard error of their mean
        stderr = MEDIAN_SE * MAD_TO_SIGMA * spread / np.sqrt(pairs)
        level = np.nanmedian(x - slope[:, None] * np.arange(w)[None, :], axis=1) + slope * (w - 1)
        cap = self._cap[rows]
        rising = slope > np.maximum(self.sig * stderr, 0.0) + 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            tte = np.where(rising, (cap - level) / slope * step, np.inf)
        tte = np.where(level >= cap, 0.0, np.maximum(tte, 0.0))
        return level, tte
