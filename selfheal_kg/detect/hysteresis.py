"""Turn per-point scores into signals that open and clear without flapping.

Per series, an *episode* starts when the score rises above ``clear``; its onset is that time.
The signal opens (is confirmed) once ``min_fire`` points of the episode reached ``fire``; it
clears after ``min_clear`` consecutive points at or below ``clear``. An episode that falls back
to ``clear`` before confirmation is forgotten. Two levels plus minimum durations mean a score
oscillating around ``fire`` yields one signal, not one per crossing.

Each series may have its own fire level (``set_level``, or a ``levels`` provider such as
``learn.thresholds.ThresholdTuner.levels``): a series that produced confirmed false positives
fires later than the others. Removing the level gives the default back.

State lives in numpy arrays; Python only touches the series whose signal opens or clears.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from selfheal_kg.detect.base import FloatArray, Scores, SeriesIndex, as_values, grow
from selfheal_kg.model import Direction, Signal


class SignalTracker:
    """Hysteresis over detector scores, producing :class:`~selfheal_kg.model.Signal` values.

    Args:
        fire: score a point must reach to count toward confirmation.
        clear: score at or below which a point counts toward clearing.
        min_fire: points at ``fire`` needed (within one episode) to open a signal.
        min_clear: consecutive points at ``clear`` needed to clear it.
        detector: detector name written into the signals.
        levels: per-series fire levels, read before every update (keep it cheap: cache);
            ``set_level`` overrides what it gives.
    """

    def __init__(
        self,
        fire: float = 0.8,
        clear: float = 0.3,
        min_fire: int = 2,
        min_clear: int = 3,
        detector: str = "robust_z",
        levels: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        if not 0 <= clear < fire <= 1:
            raise ValueError("need 0 <= clear < fire <= 1")
        self.fire, self.clear = fire, clear
        self.min_fire, self.min_clear = max(1, min_fire), max(1, min_clear)
        self.detector = detector
        self._index = SeriesIndex()
        self._onset: FloatArray = np.zeros(0)
        self._fired = np.zeros(0, dtype=np.intp)
        self._calm = np.zeros(0, dtype=np.intp)
        self._active = np.zeros(0, dtype=bool)
        self._fire: FloatArray = np.zeros(0)
        self._open: dict[str, Signal] = {}
        self._source = levels
        self._pulled: dict[str, float] = {}
        self._manual: dict[str, float] = {}

    # -- per-series fire levels ---------------------------------------------------------

    def level(self, series: str) -> float:
        """Return the fire level in force for ``series``."""
        return self._manual.get(series, self._pulled.get(series, self.fire))

    def set_level(self, series: str, level: float | None) -> None:
        """Set the fire level of one series (``None``: back to the provider or default).

        Raises:
            ValueError: ``level`` is not in ``(clear, 1]``.
        """
        if level is None:
            self._manual.pop(series, None)
        else:
            self._manual[series] = self._checked(series, level)
        self._apply(series)

    def _checked(self, series: str, level: float) -> float:
        if not self.clear < level <= 1:
            raise ValueError(
                f"fire level {level!r} for series {series!r} must be in ({self.clear}, 1]"
            )
        return float(level)

    def _sync_levels(self) -> None:
        """Pull the provider's levels; touch only the series whose level changed."""
        if self._source is None:
            return
        wanted = {s: self._checked(s, v) for s, v in self._source().items()}
        if wanted == self._pulled:
            return
        changed = {s for s in wanted.keys() | self._pulled.keys()
                   if wanted.get(s) != self._pulled.get(s)}
        self._pulled = wanted
        for s in changed:
            self._apply(s)

    def _apply(self, series: str) -> None:
        (row,) = self._rows([series]).tolist()
        self._fire[row] = self.level(series)

    def active(self) -> list[Signal]:
        """Return the signals open now."""
        return list(self._open.values())

    def is_active(self, series: str) -> bool:
        """Return whether ``series`` has an open signal."""
        return series in self._open

    def update(  # the positional order is the pipeline's documented API
        self,
        t: float,
        series: Sequence[str],
        nodes: Sequence[str],
        metrics: Sequence[str],
        scores: Scores,
        values: FloatArray,
    ) -> tuple[list[Signal], list[Signal]]:
        """Advance every series by one point; return the signals (opened, cleared)."""
        vals = as_values(values, len(series))
        self._sync_levels()
        rows = self._rows(series)
        s = scores.score
        opening, clearing = self._step(t, rows, s)
        opened = [
            self._open_signal(
                t, i, onset=float(self._onset[rows[i]]), series=series, nodes=nodes,
                metrics=metrics, scores=scores, vals=vals,
            )
            for i in np.flatnonzero(opening).tolist()
        ]
        cleared = [self._close_signal(series[i]) for i in np.flatnonzero(clearing).tolist()]
        return opened, cleared

    def _rows(self, series: Sequence[str]) -> np.ndarray:
        rows = self._index.rows(series)
        size = len(self._index)
        self._onset = grow(self._onset, size, np.nan)
        self._fired = grow(self._fired, size, 0)
        self._calm = grow(self._calm, size, 0)
        self._active = grow(self._active, size, False)
        self._fire = grow(self._fire, size, self.fire)
        return rows

    def _step(self, t: float, rows: np.ndarray, s: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        """Update the counters of ``rows``; return masks of the rows opening and clearing."""
        active = self._active[rows]
        above = s > self.clear
        onset = self._onset[rows]
        # An idle series above `clear` starts (or continues) an episode; below, it forgets it.
        onset = np.where(~active & above & np.isnan(onset), t, onset)
        onset = np.where(~active & ~above, np.nan, onset)
        fired = np.where(active | ~above, 0, self._fired[rows] + (s >= self._fire[rows]))
        calm = np.where(active & ~above, self._calm[rows] + 1, 0)
        opening = ~active & (fired >= self.min_fire)
        clearing = active & (calm >= self.min_clear)
        self._onset[rows] = np.where(clearing, np.nan, onset)
        self._fired[rows] = np.where(opening, 0, fired)
        self._calm[rows] = np.where(clearing, 0, calm)
        self._active[rows] = (active | opening) & ~clearing
        return opening, clearing

    def _open_signal(
        self,
        t: float,
        i: int,
        *,
        onset: float,
        series: Sequence[str],
        nodes: Sequence[str],
        metrics: Sequence[str],
        scores: Scores,
        vals: FloatArray,
    ) -> Signal:
        direction: Direction = "down" if scores.direction[i] < 0 else "up"
        signal = Signal(
            id=f"{series[i]}@{onset}",
            series=series[i],
            node=nodes[i],
            metric=metrics[i],
            detector=self.detector,
            score=float(scores.score[i]),
            direction=direction,
            onset=onset,
            detected_at=t,
            value=float(vals[i]),
            baseline=float(scores.baseline[i]),
        )
        self._open[series[i]] = signal
        return signal

    def close(self, series: str) -> Signal | None:
        """Close the open signal of ``series`` (it went silent); return it, or None."""
        if series not in self._open:
            return None
        (row,) = self._rows([series]).tolist()
        self._active[row] = False
        self._onset[row] = np.nan
        self._fired[row] = 0
        self._calm[row] = 0
        return self._close_signal(series)

    def _close_signal(self, series: str) -> Signal:
        signal = self._open.pop(series)
        return replace(signal, active=False)
