"""The simulated memory of a shop service: a steady level, and a leak that can be switched on.

The service exports ``process.memory.utilization`` (used memory / its limit, a gauge in
[0, 1]). Normally it stays at a small steady level; with a leak of ``rate`` (a fraction of
the limit per second) it grows linearly, and at 1.0 the process runs out of memory and
dies. Switching the leak off frees what it took (the leaked cache is dropped); a restart
starts from the steady level again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

BASE_UTILIZATION = 0.25
MAX_LEAK_PER_S = 1.0


class Memory:
    """Memory utilisation of the process, thread-safe.

    Args:
        base: the steady utilisation.
        now: the monotonic clock (seconds).
    """

    def __init__(
        self, base: float = BASE_UTILIZATION, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._base = base
        self._now = now
        self._rate = 0.0
        self._leaked = 0.0
        self._since = now()

    def set_leak(self, rate: float) -> None:
        """Leak ``rate`` of the limit per second from now on; 0 stops it and frees the leak."""
        if not 0.0 <= rate <= MAX_LEAK_PER_S:
            raise ValueError(f"leak_per_s must be in [0, {MAX_LEAK_PER_S:g}]")
        with self._lock:
            t = self._now()
            self._leaked = 0.0 if rate == 0.0 else self._leaked + self._rate * (t - self._since)
            self._rate, self._since = rate, t

    def leak(self) -> float:
        """Return the current leak rate (fraction of the limit per second)."""
        with self._lock:
            return self._rate

    def utilization(self) -> float:
        """Return used memory / limit, capped at 1.0."""
        with self._lock:
            grown = self._leaked + self._rate * (self._now() - self._since)
            return min(1.0, self._base + grown)

    def exhausted(self) -> bool:
        """Return whether the process has run out of memory."""
        return self.utilization() >= 1.0


def watch(memory: Memory, on_exhausted: Callable[[], None], period: float = 0.2) -> None:
    """Call ``on_exhausted`` (once) when ``memory`` runs out, from a daemon thread."""

    def loop() -> None:
        while not memory.exhausted():
            time.sleep(period)
        on_exhausted()

    threading.Thread(target=loop, name="memory-watch", daemon=True).start()
