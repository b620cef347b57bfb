"""Per-series ring buffers of the last ``window`` values, one row per series."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfheal_kg.detect.base import FloatArray, IntArray, SeriesIndex, grow


class Rings:
    """The last ``window`` values of each series in rows of a 2-D array (NaN = unfilled).

    Args:
        window: values kept per series.
    """

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError("need window >= 2")
        self.window = window
        self.index = SeriesIndex()
        self.buf: FloatArray = np.full((0, window), np.nan)
        self.pos = np.zeros(0, dtype=np.intp)
        self.count = np.zeros(0, dtype=np.intp)

    def rows(self, series: Sequence[str]) -> IntArray:
        """Return the row of each series (new rows for unseen ids).

        Raises:
            ValueError: a series appears twice.
        """
        rows = self.index.rows(series)
        if len(np.unique(rows)) != len(rows):
            raise ValueError("a series appears twice in one update")
        size = len(self.index)
        self.buf = grow(self.buf, size, np.nan)
        self.pos = grow(self.pos, size, 0)
        self.count = grow(self.count, size, 0)
        return rows

    def push(self, rows: IntArray, vals: FloatArray) -> None:
        """Append ``vals[i]`` to the ring of ``rows[i]``, overwriting the oldest value."""
        self.buf[rows, self.pos[rows]] = vals
        self.pos[rows] = (self.pos[rows] + 1) % self.window
        self.count[rows] = np.minimum(self.count[rows] + 1, self.window)

    def ordered(self, rows: IntArray) -> FloatArray:
        """Return the rings of ``rows`` oldest first (unfilled slots NaN, at the start)."""
        cols = (self.pos[rows][:, None] + np.arange(self.window)[None, :]) % self.window
        out: FloatArray = self.buf[rows[:, None], cols]
        return out
