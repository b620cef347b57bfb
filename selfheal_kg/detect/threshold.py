"""Static thresholds and multi-window SLO burn-rate alerts.

Static: a series with bounds ``(lower, upper)`` (either may be ``None``) scores 1 outside
them, 0 inside. SLO burn rate (Google SRE workbook, "Alerting on SLOs", multiwindow,
multi-burn-rate alerts): for an error-ratio series with SLO target T (e.g. 0.99) the error
budget is 1 - T and the burn rate over a window is mean(error ratio) / (1 - T). A rule
(long, short, factor) holds when *both* windows burn faster than ``factor``::

    fast: 1 h and 5 min at 14.4x  (2 % of a 30-day budget in one hour)
    slow: 6 h and 30 min at 6x    (5 % of the budget in six hours)
    r     = max over rules of min(burn_long, burn_short) / factor
    score = clip((r - 0.5) / 0.5, 0, 1)    (1 exactly when a rule holds)

The short window makes the alert stop soon after the errors stop. Windows are converted to
points with the update step (learned from the update times unless given); window means come
from a ring of cumulative sums, O(1) per series per update. A window longer than the history
uses all of it, but nothing is scored before the shortest window is filled. Missing values
do not advance the windows. By default series whose id ends in ``error.ratio`` get a 99 % SLO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

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

Bounds = tuple[float | None, float | None]
#: (long window s, short window s, burn-rate factor)
BURN_RULES: tuple[tuple[float, float, float], ...] = ((3600.0, 300.0, 14.4), (21600.0, 1800.0, 6.0))


def default_slo(series: str) -> float | None:
    """Return a 99 % target for error-ratio series, else ``None`` (no SLO)."""
    return 0.99 if series.endswith("error.ratio") else None


class Threshold:
    """Static bounds and SLO burn rates, vectorised over all series.

    Args:
        bounds: series id → (lower, upper); either may be ``None``.
        slo: series id → SLO target in (0, 1), or ``None`` for no SLO.
        step: seconds between points; ``None`` learns it from the update times.
        rules: burn-rate rules (long s, short s, factor).
    """

    name = "threshold"

    def __init__(
        self,
        bounds: Mapping[str, Bounds] | None = None,
        slo: Callable[[str], float | None] = default_slo,
        step: float | None = None,
        rules: Sequence[tuple[float, float, float]] = BURN_RULES,
    ) -> None:
        for s, (lo, hi) in (bounds or {}).items():
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"bounds of {s!r}: lower {lo} > upper {hi}")
        self.bounds = dict(bounds or {})
        self.slo, self.rules = slo, tuple(rules)
        self._cadence = Cadence(step)
        self._index = SeriesIndex()
        self._lo: FloatArray = np.zeros(0)
        self._hi: FloatArray = np.zeros(0)
        self._budget: FloatArray = np.zeros(0)
        self._slot = np.zeros(0, dtype=np.intp)
        self._slots = 0
        self._burn: _BurnWindows | None = None

    def forget(self, series: str) -> None:
        """Drop the baseline of ``series``: if it comes back, it warms up again."""
        self._index.forget(series)

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> Scores:
        """Score each value against its bounds and its series' burn rates."""
        vals = as_values(values, len(series))
        rows = self._rows(series)
        present = ~np.isnan(vals)
        lo, hi = self._lo[rows], self._hi[rows]
        below, above = present & (vals < lo), present & (vals > hi)
        score = np.where(below | above, 1.0, 0.0)
        direction: Int8Array = np.where(above, 1, np.where(below, -1, 0)).astype(np.int8)
        baseline = np.where(above, hi, np.where(below, lo, np.nan))
        burn = self._burn_scores(t, rows, vals, present)
        if burn is not None:
            up = burn > score
            score = np.maximum(score, burn)
            direction[up] = 1
            baseline[up] = 1.0 - self._budget[rows][up]
        return Scores(score=score, direction=direction, baseline=np.asarray(baseline, float))

    def _rows(self, series: Sequence[str]) -> IntArray:
        before = len(self._index)
        rows = self._index.rows(series)
        if len(np.unique(rows)) != len(rows):
            raise ValueError("a series appears twice in one update")
        size = len(self._index)
        self._lo, self._hi = grow(self._lo, size, -np.inf), grow(self._hi, size, np.inf)
        self._budget = grow(self._budget, size, np.nan)
        self._slot = grow(self._slot, size, -1)
        for i in np.flatnonzero(rows >= before).tolist():
            self._configure(int(rows[i]), series[i])
        return rows

    def _configure(self, row: int, series: str) -> None:
        lo, hi = self.bounds.get(series, (None, None))
        self._lo[row] = -np.inf if lo is None else lo
        self._hi[row] = np.inf if hi is None else hi
        target = self.slo(series)
        if target is not None:
            if not 0 < target < 1:
                raise ValueError(f"SLO target of {series!r} must be in (0, 1), got {target}")
            self._budget[row] = 1.0 - target
            self._slot[row] = self._slots
            self._slots += 1

    def _burn_scores(
        self, t: float, rows: IntArray, vals: FloatArray, present: np.ndarray
    ) -> FloatArray | None:
        step = self._cadence.observe(t)
        has_slo = present & ~np.isnan(self._budget[rows])
        if step is None or not has_slo.any():
            return None
        if self._burn is None:
            self._burn = _BurnWindows(self.rules, step)
        out = np.zeros(len(rows))
        r = rows[has_slo]
        out[has_slo] = self._burn.update(self._slot[r], self._slots, vals[has_slo], self._budget[r])
        return out


class _BurnWindows:
    """Rings of cumulative sums per SLO series, for O(1) window means."""

    def __init__(self, rules: Sequence[tuple[float, float, float]], step: float) -> None:
        self.rules = [
            (max(1, math.ceil(long / step)), max(1, math.ceil(short / step)), factor)
            for long, short, factor in rules
        ]
        self.size = max(k for rule in self.rules for k in rule[:2]) + 1
        self.cum: FloatArray = np.zeros((0, self.size))
        self.total: FloatArray = np.zeros(0)
        self.count = np.zeros(0, dtype=np.intp)

    def update(self, idx: IntArray, slots: int, x: FloatArray, budget: FloatArray) -> FloatArray:
        """Fold ``x`` into the slots ``idx`` (of ``slots``); return each one's burn score."""
        self.cum = grow(self.cum, slots, 0.0)
        self.total = grow(self.total, slots, 0.0)
        self.count = grow(self.count, slots, 0)
        n = self.count[idx]
        self.total[idx] += x
        self.cum[idx, (n + 1) % self.size] = self.total[idx]
        self.count[idx] = n + 1
        ratio = np.zeros(len(idx))
        for long, short, factor in self.rules:
            burn = np.minimum(self._mean(idx, long), self._mean(idx, short)) / budget
            ratio = np.maximum(ratio, burn / factor)
        shortest = min(min(r[:2]) for r in self.rules)
        return np.where(self.count[idx] >= shortest, np.clip((ratio - 0.5) / 0.5, 0, 1), 0.0)

    def _mean(self, idx: IntArray, k: int) -> FloatArray:
        n = self.count[idx]
        span = np.minimum(n, k)
        then = self.cum[idx, (n - span) % self.size]
        return (self.total[idx] - then) / np.maximum(span, 1)
