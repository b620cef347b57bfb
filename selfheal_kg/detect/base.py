"""The Detector port and the per-series state index every detector shares.

A detector scores many series at once: ``update`` receives one value per series for one time
and returns one score per series, computed with numpy over all of them (no Python loop per
series). Missing values are NaN: they update nothing and score 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Int8Array = npt.NDArray[np.int8]
A = TypeVar("A", bound=np.ndarray[Any, Any])


@dataclass(frozen=True, slots=True)
class Scores:
    """What a detector says about each series of one update, aligned with the input.

    Attributes:
        score: anomaly strength in [0, 1] (0 for missing values and warm-up).
        direction: +1 above the baseline, -1 below, 0 when not scored.
        baseline: the value the detector expected (NaN while warming up).
    """

    score: FloatArray
    direction: Int8Array
    baseline: FloatArray


class Detector(Protocol):
    """A streaming detector over many series."""

    name: str

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> Scores:
        """Score ``values[i]`` of ``series[i]`` at time ``t``, then learn from it."""
        ...

    def forget(self, series: str) -> None:
        """Drop what was learnt of ``series``: if it comes back, it starts a new baseline."""
        ...


class SeriesIndex:
    """Map series ids to rows of per-series state arrays, growing them on demand.

    ``len`` is the number of rows handed out (the size the state arrays must have). A
    forgotten series gets a fresh row if it comes back, so its state starts anew (the
    arrays' fill values); rows are never reused.
    """

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._next = 0

    def __len__(self) -> int:
        return self._next

    def forget(self, series: str) -> bool:
        """Forget the row of ``series``; return whether it was known."""
        return self._rows.pop(series, None) is not None

    def known(self) -> Mapping[str, int]:
        """Return the series ids seen so far, with their rows (read-only view)."""
        return self._rows

    def rows(self, series: Sequence[str]) -> IntArray:
        """Return the row of each series, assigning new rows to unseen ids."""
        rows = self._rows
        out = np.empty(len(series), dtype=np.intp)
        for i, s in enumerate(series):
            row = rows.get(s)
            if row is None:
                row = rows[s] = self._next
                self._next += 1
            out[i] = row
        return out


def grow(array: A, size: int, fill: float) -> A:
    """Return ``array`` with at least ``size`` rows, new rows set to ``fill``.

    Capacity doubles so that adding series one by one stays amortised O(1).
    """
    if array.shape[0] >= size:
        return array
    capacity = max(size, 2 * array.shape[0], 16)
    bigger = np.full((capacity, *array.shape[1:]), fill, dtype=array.dtype)
    bigger[: array.shape[0]] = array
    # np.full is typed as a generic array; it has the dtype and rank of the input
    return bigger  # type: ignore[return-value]


def as_values(values: Sequence[float] | FloatArray, n: int) -> FloatArray:
    """Return ``values`` as a float64 vector of length ``n`` or raise ``ValueError``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"expected {n} values, got shape {arr.shape}")
    return arr


class Cadence:
    """Learn the update interval (seconds) from the times passed to ``update``.

    Detectors whose windows are in seconds (burn rates) or whose phase depends on time
    (seasonal profiles) need the step; the server ticks at a fixed interval, so the first
    positive gap between two updates is it, unless ``step`` is given.
    """

    def __init__(self, step: float | None = None) -> None:
        if step is not None and step <= 0:
            raise ValueError("step must be positive")
        self.step = step
        self._last: float | None = None

    def observe(self, t: float) -> float | None:
        """Record an update at ``t``; return the step once known."""
        if self.step is None and self._last is not None and t > self._last:
            self.step = t - self._last
        self._last = t
        return self.step
