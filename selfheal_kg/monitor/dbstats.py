"""Poll PostgreSQL's statistics of the registered databases, like an exporter.

Each :meth:`DbStatsPoller.poll` reads ``pg_stat_database`` for the connection's current
database (https://www.postgresql.org/docs/current/monitoring-stats.html) and turns the
cumulative counters into per-interval values of the database node:

- ``db.cache.hit.ratio`` — ``blks_hit / (blks_hit + blks_read)`` over the interval: the share
  of block reads served from shared buffers (no point when no block was touched);
- ``db.temp.bytes.rate`` — bytes per second written to temporary files (sorts and hashes
  that did not fit in ``work_mem``).

The first reading of a database, and a reading after a statistics reset (``stats_reset``
changed or a counter went down), only set the baseline: no point. A server that cannot be
reached or refuses the query is reported in :attr:`DbStatsPoller.errors`, never raised into
the caller's loop; the connection is opened again on the next poll.

SQLite databases are skipped: SQLite keeps no such statistics. A DSN that is not a
PostgreSQL conninfo (a file path, ``sqlite:``) is listed in :attr:`DbStatsPoller.skipped`.
Counters are PostgreSQL's: a backend publishes its counts when it goes idle (at most once a
second) or exits, so a busy session's reads show up to a second late.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

from selfheal_kg.clock import Clock
from selfheal_kg.model import DerivedPoint

HIT_RATIO: Final = "db.cache.hit.ratio"
TEMP_RATE: Final = "db.temp.bytes.rate"
_QUERY: Final = (
    "SELECT blks_hit, blks_read, temp_files, temp_bytes, extract(epoch FROM stats_reset)"
    " FROM pg_stat_database WHERE datname = current_database()"
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of a database's cumulative counters at time ``t``.

    ``stats_reset`` is the epoch time of the last statistics reset (``None``: never reset).
    """

    t: float
    blks_hit: int
    blks_read: int
    temp_files: int
    temp_bytes: int
    stats_reset: float | None = None

    def counters(self) -> tuple[int, int, int, int]:
        """Return the cumulative counters, in one order."""
        return self.blks_hit, self.blks_read, self.temp_files, self.temp_bytes


def is_reset(previous: Reading, current: Reading) -> bool:
    """Return whether the statistics were reset between two readings."""
    went_down = any(c < p for p, c in zip(previous.counters(), current.counters(), strict=True))
    return went_down or current.stats_reset != previous.stats_reset


def derive(node: str, previous: Reading | None, current: Reading) -> list[DerivedPoint]:
    """Return the points of the interval between two readings of ``node``'s database.

    None for a first reading, a reset, or an interval that is not positive.
    """
    if previous is None or current.t <= previous.t or is_reset(previous, current):
        return []
    hit = current.blks_hit - previous.blks_hit
    read = current.blks_read - previous.blks_read
    seconds = current.t - previous.t
    points = [_point(node, TEMP_RATE, current.t,
                     (current.temp_bytes - previous.temp_bytes) / seconds)]
    if hit + read > 0:
        points.insert(0, _point(node, HIT_RATIO, current.t, hit / (hit + read)))
    return points


def _point(node: str, metric: str, t: float, value: float) -> DerivedPoint:
    return DerivedPoint(f"{node}|{metric}", node, metric, t, value)


def is_postgres_dsn(dsn: str) -> bool:
    """Return whether ``dsn`` is a PostgreSQL conninfo (URL or ``key=value``), not a file."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return True
    try:
        return bool(conninfo_to_dict(dsn))
    except psycopg.Error:
        return False


class DbStatsPoller:
    """Read ``pg_stat_database`` of each registered database and derive per-interval points.

    Args:
        databases: database node name → PostgreSQL conninfo (other DSNs are skipped).
        clock: the time of each reading (intervals are measured on it).
        period: seconds between two polls of :meth:`poll_due`.
        connect_timeout: seconds to wait for a server when (re)connecting.
    """

    def __init__(
        self,
        databases: Mapping[str, str],
        clock: Clock,
        *,
        period: float = 10.0,
        connect_timeout: int = 3,
    ) -> None:
        self._clock = clock
        self._period = period
        self._next = clock.now()
        self._timeout = connect_timeout
        self._dsns = {n: d for n, d in databases.items() if is_postgres_dsn(d)}
        self.skipped: tuple[str, ...] = tuple(sorted(set(databases) - set(self._dsns)))
        self._conns: dict[str, Any] = {}
        self._last: dict[str, Reading] = {}
        self.errors: dict[str, str] = {}
        """node → the last poll's error for that database (absent when it was read)."""

    @property
    def targets(self) -> tuple[str, ...]:
        """Return the database nodes polled (the PostgreSQL ones)."""
        return tuple(sorted(self._dsns))

    def poll_due(self) -> list[DerivedPoint]:
        """Poll when ``period`` passed since the last due poll; otherwise return nothing."""
        now = self._clock.now()
        if now < self._next:
            return []
        self._next = now + self._period
        return self.poll()

    def poll(self) -> list[DerivedPoint]:
        """Read every database once; return the points of the interval since the last poll."""
        out: list[DerivedPoint] = []
        for node in sorted(self._dsns):
            reading = self._read(node)
            if reading is not None:
                out += derive(node, self._last.get(node), reading)
                self._last[node] = reading
        return out

    def close(self) -> None:
        """Close every connection (a later poll opens them again)."""
        for node in list(self._conns):
            self._drop(node)

    def _read(self, node: str) -> Reading | None:
        """Return a reading of ``node``'s database, or ``None`` with the error recorded."""
        try:
            conn = self._conns.get(node) or self._connect(node)
            row = conn.execute(_QUERY).fetchone()
        except psycopg.Error as exc:
            self._fail(node, f"{type(exc).__name__}: {str(exc).strip()[:300]}")
            return None
        if row is None:
            self._fail(node, "pg_stat_database has no row for the current database")
            return None
        if self.errors.pop(node, None) is not None:
            _log.info("database statistics of %s readable again", node)
        hit, read, files, size, reset = row
        return Reading(self._clock.now(), int(hit), int(read), int(files), int(size),
                       None if reset is None else float(reset))

    def _connect(self, node: str) -> Any:
        # autocommit: each reading is its own transaction, hence a fresh statistics snapshot
        conn = psycopg.connect(self._dsns[node], autocommit=True,
                               connect_timeout=self._timeout)
        self._conns[node] = conn
        return conn

    def _fail(self, node: str, reason: str) -> None:
        if self.errors.get(node) != reason:
            _log.warning("database statistics of %s unreadable: %s", node, reason)
        self.errors[node] = reason
        self._drop(node)

    def _drop(self, node: str) -> None:
        conn = self._conns.pop(node, None)
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                _log.debug("closing the statistics connection of %s failed", node)
