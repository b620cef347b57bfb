"""The inventory's database: a ``stock`` table looked up by ``sku``, in SQLite or PostgreSQL.

Each request looks one item up (``SELECT qty FROM stock WHERE sku = ?``) inside a CLIENT
span and records ``db.client.operation.duration`` (OpenTelemetry database semantic
conventions). The lookup is fast while the ``stock_sku_idx`` index exists; without it (the
slow-query fault) every lookup scans the table.

Connections come from a bounded pool (``pool.py``) of ``pool_size`` connections (read live
from the service's configuration; 8 without one): SQLite read-only connections to a file, or
PostgreSQL ones to the conninfo in the environment variable ``SHOP_DB_DSN`` (never on the
command line, where ``ps`` would show it); one that failed is closed, not reused. A lookup
that finds every connection in use waits up to ``POOL_WAIT`` for one, before and outside
its CLIENT span (the database is not what is slow), then fails with ``PoolTimeout``.
Pool metrics (semantic conventions for database client connections, attribute
``db.client.connection.pool.name`` = the database's node name):

* ``db.client.connection.utilization`` (gauge, "1"): connections in use, leaked ones
  included, / pool size;
* ``db.client.connection.wait_time`` (histogram, s): time waited for a connection, every
  lookup (0 when one was free);
* ``db.client.connection.timeouts`` (counter): lookups that got no connection in time.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from common import Telemetry
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode
from pool import POOL_WAIT, ConnectionPool, PoolTimeout

TABLE = "stock"
COLUMN = "sku"
INDEX = "stock_sku_idx"
SEED_ROWS = 500
DSN_ENV = "SHOP_DB_DSN"
TIMEOUT = 1.0
POOL_SIZE = 8  # without a configuration file
POOL_TIMEOUT = "PoolTimeout"
WAIT_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class DbTarget:
    """Where the stock lives: an SQLite file or a PostgreSQL conninfo, and its node name."""

    system: Literal["sqlite", "postgresql"]
    where: str
    name: str


def target_from(path: Path | None, name: str | None) -> DbTarget | None:
    """Return the database of this service: PostgreSQL when ``SHOP_DB_DSN`` is set."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        return DbTarget("postgresql", dsn, name or "inventory-db")
    if path is None:
        return None
    return DbTarget("sqlite", str(path), name or path.stem)


def seed_rows(first: int, count: int) -> list[tuple[str, int]]:
    """Return ``count`` stock rows from item number ``first`` on."""
    return [(f"sku-{i}", i % 97) for i in range(first, first + count)]


class Stock:
    """Look items up in the stock table through a bounded connection pool, with telemetry.

    Args:
        target: the database.
        tel: the service's telemetry.
        pool_size: the current pool size (re-read on every lookup).
        wait: seconds a lookup waits for a free connection.
    """

    def __init__(
        self, target: DbTarget, tel: Telemetry,
        pool_size: Callable[[], int] = lambda: POOL_SIZE, wait: float = POOL_WAIT,
    ) -> None:
        self.target, self.tel = target, tel
        self.pool: ConnectionPool[Any] = ConnectionPool(_close, pool_size, wait)
        self._pool_attrs = {"db.client.connection.pool.name": target.name}
        meter = tel.meter()
        self._wait = meter.create_histogram(
            "db.client.connection.wait_time", unit="s",
            description="Time waited for a free connection of the pool",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self._timeouts = meter.create_counter(
            "db.client.connection.timeouts", unit="{timeout}",
            description="Lookups that got no connection within the pool's wait",
        )
        meter.create_observable_gauge(
            "db.client.connection.utilization", callbacks=[self._observe], unit="1",
            description="Connections in use (leaked ones included) / pool size",
        )

    def _observe(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(self.pool.utilization(), self._pool_attrs)]

    def init(self) -> None:
        """Create the table, its index and a few hundred items, unless the table exists."""
        if self.target.system == "sqlite":
            init_sqlite(Path(self.target.where))
        else:
            init_postgres(self.target.where)

    def lookup(self) -> str | None:
        """Read one item's quantity; return the ``error.type`` on failure, else ``None``."""
        try:
            conn, waited = self.pool.acquire()
        except PoolTimeout:
            self._wait.record(self.pool.wait, self._pool_attrs)
            self._timeouts.add(1, self._pool_attrs)
            return POOL_TIMEOUT
        self._wait.record(waited, self._pool_attrs)
        broken = False
        try:
            conn, error = self._query(conn)
            broken = error is not None
        finally:
            self.pool.release(conn, broken=broken)
        return error

    def _query(self, conn: Any) -> tuple[Any, str | None]:
        """Run the lookup in a CLIENT span (opening ``conn`` if None); return it and the error."""
        sku = f"sku-{random.randint(1, SEED_ROWS)}"
        attrs: dict[str, Any] = {
            "db.system.name": self.target.system,
            "db.namespace": self.target.name,
            "db.operation.name": "SELECT",
            "db.collection.name": TABLE,
        }
        start = time.perf_counter()
        with self.tel.tracer.start_as_current_span(
            f"SELECT {TABLE}", kind=SpanKind.CLIENT,
            attributes={**attrs, "service.peer.name": self.target.name,
                        "db.query.text": f"SELECT qty FROM {TABLE} WHERE {COLUMN} = ?"},
        ) as span:
            error = None
            try:
                conn = conn if conn is not None else self._connect()
                self._read(conn, sku)
            except (sqlite3.Error, psycopg.Error) as exc:
                error = type(exc).__name__
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.set_attribute("error.type", error)
                attrs["error.type"] = error
        self.tel.db_duration.record(time.perf_counter() - start, attrs)
        return conn, error

    def _connect(self) -> Any:
        if self.target.system == "sqlite":
            # Read-only URI: a missing database file is an error, not a new empty database.
            # Pooled: used by one request thread at a time, not always the one that opened it.
            uri = Path(self.target.where).resolve().as_uri() + "?mode=ro"
            return sqlite3.connect(uri, uri=True, timeout=TIMEOUT, check_same_thread=False)
        return psycopg.connect(self.target.where, autocommit=True, connect_timeout=2)

    def _read(self, conn: Any, sku: str) -> None:
        mark = "?" if self.target.system == "sqlite" else "%s"
        conn.execute(f"SELECT qty FROM {TABLE} WHERE {COLUMN} = {mark}", (sku,)).fetchall()


def _close(conn: Any) -> None:
    # a connection that fails to close is gone either way
    with contextlib.suppress(sqlite3.Error, psycopg.Error):
        conn.close()


def init_sqlite(path: Path) -> None:
    """Create the SQLite stock table with its index and seed items, unless it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        with conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
            ).fetchone()
            if exists:
                return
            conn.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, {COLUMN} TEXT, "
                         "qty INTEGER)")
            conn.execute(f"CREATE INDEX {INDEX} ON {TABLE} ({COLUMN})")
            conn.executemany(f"INSERT INTO {TABLE} ({COLUMN}, qty) VALUES (?, ?)",
                             seed_rows(1, SEED_ROWS))
    finally:
        conn.close()


def init_postgres(dsn: str) -> None:
    """Create the PostgreSQL stock table with its index and seed items, unless it exists."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
        if row is not None and row[0] is not None:
            return
        conn.execute(f"CREATE TABLE {TABLE} (id SERIAL PRIMARY KEY, {COLUMN} TEXT, "
                     "qty INTEGER)")
        conn.execute(f"CREATE INDEX {INDEX} ON {TABLE} ({COLUMN})")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {TABLE} ({COLUMN}, qty) VALUES (%s, %s)",
                            seed_rows(1, SEED_ROWS))
        conn.execute(f"ANALYZE {TABLE}")
