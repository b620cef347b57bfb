"""A bounded pool of database connections whose size can change while it runs.

A request takes a slot and an idle connection, if any (``acquire``; it opens one itself
when none is idle, so a failed connect is its own database error), and gives the
connection back (``release``). When every slot is taken it waits up to ``wait`` seconds
for one, then fails with ``PoolTimeout``: the pool is exhausted, not the database slow.
The size is read from a callable on every check, so a configuration push resizes a running pool.

``hold(n)`` models a connection leak: ``n`` connections taken and never given back (at most
the pool's size of them count) until ``hold(0)``. The leak only occupies slots; it opens no
database sessions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")
POOL_WAIT = 0.5  # seconds a request waits for a free connection
# Re-check the size this often while waiting: a resize comes from a file, not a notify().
_RECHECK = 0.05
MAX_HELD = 256


class PoolTimeout(Exception):
    """No connection became free within the pool's wait."""


class ConnectionPool(Generic[C]):
    """At most ``size()`` connections in use at once, kept idle for reuse between requests.

    Args:
        close: close one connection (errors are the caller's to swallow).
        size: the current pool size (re-read on every check).
        wait: seconds ``acquire`` waits for a free connection.
        now: the monotonic clock, in seconds.
    """

    def __init__(
        self,
        close: Callable[[C], None],
        size: Callable[[], int],
        wait: float = POOL_WAIT,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._close, self._size = close, size
        self.wait, self._now = wait, now
        self._cond = threading.Condition()
        self._idle: list[C] = []
        self._in_use = 0
        self._held = 0

    def acquire(self) -> tuple[C | None, float]:
        """Take a slot; return an idle connection (None: open one) and the seconds waited.

        Raises:
            PoolTimeout: every connection stayed in use for ``wait`` seconds.
        """
        start = self._now()
        deadline = start + self.wait
        waited = False
        with self._cond:
            while self._taken() >= self._size():
                left = deadline - self._now()
                if left <= 0:
                    raise PoolTimeout(f"no free connection within {self.wait:g} s")
                waited = True
                self._cond.wait(min(left, _RECHECK))
            self._in_use += 1
            conn = self._idle.pop() if self._idle else None
        # exactly 0 for a free slot: the wait-time metric then shows only real waiting
        return conn, (self._now() - start) if waited else 0.0

    def release(self, conn: C | None, *, broken: bool = False) -> None:
        """Free the slot and give ``conn`` back; a broken one, or one too many, is closed."""
        with self._cond:
            keep = conn is not None and not broken and (
                self._in_use - 1 + len(self._idle) < self._size())
            if keep and conn is not None:
                self._idle.append(conn)
            self._in_use -= 1
            self._cond.notify()
        if conn is not None and not keep:
            self._close(conn)

    def hold(self, count: int) -> None:
        """Keep ``count`` connections out of the pool (a leak); 0 gives them back."""
        if not 0 <= count <= MAX_HELD:
            raise ValueError(f"held_connections must be an integer in [0, {MAX_HELD}]")
        with self._cond:
            self._held = count
            self._cond.notify_all()

    def held(self) -> int:
        """Return how many connections the leak asked for."""
        with self._cond:
            return self._held

    def utilization(self) -> float:
        """Return connections in use (held ones included) / pool size, at most 1."""
        with self._cond:
            return min(1.0, self._taken() / max(1, self._size()))

    def close(self) -> None:
        """Close the idle connections."""
        with self._cond:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close(conn)

    def _taken(self) -> int:
        # A leak cannot take more connections than the pool has.
        return self._in_use + min(self._held, self._size())
