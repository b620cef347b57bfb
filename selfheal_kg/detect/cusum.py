"""Two-sided CUSUM for level shifts, in robust-sigma units.

Each value is standardised against a sliding baseline (median and floored MAD of the last
``window`` values, as in :mod:`selfheal_kg.detect.robust_z`), then accumulated (Page 1954)::

    z   = (x - med) / scale
    S+  = max(0, S+ + z - drift);   S- = max(0, S- - z - drift)
    score = clip(max(S+, S-) / threshold, 0, 1)

A sum reaching ``threshold`` is an alarm: the point scores 1 and both sums restart at 0, so a
persisting shift alarms again every few points (the tracker keeps one signal open) while a
single noisy point cannot keep the sum high. A shift of d sigma reaches the threshold after
about threshold / (d - drift) points; small shifts that robust z never flags add up here.

Defaults (window 60, drift 1.75, threshold 8) were tuned on the Merlion synthetic set
(``bench/merlion_report.py``): smaller drifts or longer windows accumulate the lag of a
sliding median behind seasonal and trending bases and alarm on the clean files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfheal_kg.detect.base import FloatArray, Int8Array, IntArray, Scores, as_values, grow
from selfheal_kg.detect.ring import Rings
from selfheal_kg.detect.robust_z import robust_scale


class Cusum:
    """Two-sided CUSUM over a robust sliding baseline, vectorised over all series.

    Args:
        window: baseline values kept per series.
        min_points: values needed before a series is scored.
        drift: allowance k per point, in robust sigmas (shifts below it are ignored).
        threshold: decision interval h, in robust sigmas; reaching it scores 1 and resets.
        rel_floor, abs_floor: scale floors (see robust_z).
    """

    name = "cusum"

    def __init__(
        self,
        window: int = 60,
        min_points: int = 16,
        drift: float = 1.75,
        threshold: float = 8.0,
        *,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
    ) -> None:
        if not 2 <= min_points <= window:
            raise ValueError("need 2 <= min_points <= window")
        if drift < 0 or threshold <= 0:
            raise ValueError("need drift >= 0 and threshold > 0")
        self.min_points = min_points
        self.drift, self.threshold = drift, threshold
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        self._rings = Rings(window)
        self._hi: FloatArray = np.zeros(0)
        self._lo: FloatArray = np.zeros(0)

    def forget(self, series: str) -> None:
        """Drop the history of ``series``: if it comes back, it warms up again."""
        self._rings.index.forget(series)

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> Scores:
        """Score each value by its CUSUM against the series' baseline, then learn from it."""
        vals = as_values(values, len(series))
        rows = self._rings.rows(series)
        size = len(self._rings.index)
        self._hi, self._lo = grow(self._hi, size, 0.0), grow(self._lo, size, 0.0)
        n = len(series)
        score, baseline = np.zeros(n), np.full(n, np.nan)
        direction: Int8Array = np.zeros(n, dtype=np.int8)
        present = ~np.isnan(vals)
        ready = present & (self._rings.count[rows] >= self.min_points)
        if ready.any():
            score[ready], direction[ready], baseline[ready] = self._score(rows[ready], vals[ready])
        self._rings.push(rows[present], vals[present])
        return Scores(score=score, direction=direction, baseline=baseline)

    def _score(self, rows: IntArray, x: FloatArray) -> tuple[FloatArray, Int8Array, FloatArray]:
        window = self._rings.buf[rows]
        med = np.nanmedian(window, axis=1)
        mad = np.nanmedian(np.abs(window - med[:, None]), axis=1)
        z = (x - med) / robust_scale(med, mad, self.rel_floor, self.abs_floor)
        hi = np.maximum(0.0, self._hi[rows] + z - self.drift)
        lo = np.maximum(0.0, self._lo[rows] - z - self.drift)
        top = np.maximum(hi, lo)
        alarm = top >= self.threshold
        self._hi[rows] = np.where(alarm, 0.0, hi)
        self._lo[rows] = np.where(alarm, 0.0, lo)
        direction = np.where(top > 0, np.where(hi >= lo, 1, -1), np.sign(z)).astype(np.int8)
        return np.clip(top / self.threshold, 0.0, 1.0), direction, med
