"""A fixed-size ring of (time, value) pairs in numpy arrays."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class Ring:
    """The latest ``capacity`` points of one series, oldest first when read; not thread-safe."""

    __slots__ = ("_head", "_size", "_times", "_values")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a ring holds at least one point")
        self._times = np.empty(capacity, dtype=np.float64)
        self._values = np.empty(capacity, dtype=np.float64)
        self._head = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def last_time(self) -> float | None:
        """Return the time of the newest point, ``None`` when empty."""
        return float(self._times[self._head - 1]) if self._size else None

    def append(self, t: float, value: float) -> bool:
        """Add a point; refuse (return ``False``) one older than the newest."""
        last = self.last_time()
        if last is not None and t < last:
            return False
        self._times[self._head] = t
        self._values[self._head] = value
        self._head = (self._head + 1) % self._times.size
        self._size = min(self._size + 1, self._times.size)
        return True

    def arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return copies of (times, values), oldest first."""
        if self._size < self._times.size:
            return self._times[: self._size].copy(), self._values[: self._size].copy()
        order = np.r_[self._head : self._times.size, 0 : self._head]
        return self._times[order], self._values[order]
