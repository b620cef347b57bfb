"""The inventory's database: a ``stock`` table looked up by ``sku``, in SQLite or PostgreSQL.

Each request looks one item up (``SELECT qty FROM stock WHERE sku = ?``) inside a CLIENT
span and records ``db.client.operation.duration`` (OpenTelemetry database semantic
conventions). The lookup is fast while the ``stock_sku_idx`` index exists; without it (the
slow-query fault) every lookup scans the table.

SQLite: a file, opened read-only per request. PostgreSQL: the conninfo in the environment
variable ``SHOP_DB_DSN`` (never on the command line, where ``ps`` would show it), a small
pool of connections (one per concurrent request, up to ``POOL`` kept; one that failed is
closed, not returned).
"""

from __future__ import annotations

import os
import queue
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from common import Telemetry
from opentelemetry.trace import SpanKind, Status, StatusCode

TABLE = "stock"
COLUMN = "sku"
INDEX = "stock_sku_idx"
SEED_ROWS = 500
DSN_ENV = "SHOP_DB_DSN"
TIMEOUT = 1.0
POOL = 8


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
    """Look items up in the stock table, with telemetry."""

    def __init__(self, target: DbTarget, tel: Telemetry) -> None:
        self.target, self.tel = target, tel
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue(maxsize=POOL)

    def init(self) -> None:
        """Create the table, its index and a few hundred items, unless the table exists."""
        if self.target.system == "sqlite":
            init_sqlite(Path(self.target.where))
        else:
            init_postgres(self.target.where)

    def lookup(self) -> str | None:
        """Read one item's quantity; return the ``error.type`` on failure, else ``None``."""
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
                self._read(sku)
            except (sqlite3.Error, psycopg.Error) as exc:
                error = type(exc).__name__
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.set_attribute("error.type", error)
                attrs["error.type"] = error
        self.tel.db_duration.record(time.perf_counter() - start, attrs)
        return error

    def _read(self, sku: str) -> None:
        if self.target.system == "sqlite":
            # Read-only URI: a missing database file is an error, not a new empty database.
            uri = Path(self.target.where).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=TIMEOUT)
            try:
                conn.execute(f"SELECT qty FROM {TABLE} WHERE {COLUMN} = ?", (sku,)).fetchall()
            finally:
                conn.close()
            return
        pg: Any
        try:
            pg = self._idle.get_nowait()
        except queue.Empty:
            pg = psycopg.connect(self.target.where, autocommit=True, connect_timeout=2)
        try:
            pg.execute(f"SELECT qty FROM {TABLE} WHERE {COLUMN} = %s", (sku,)).fetchall()
        except psycopg.Error:
            pg.close()
            raise
        try:
            self._idle.put_nowait(pg)
        except queue.Full:
            pg.close()


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
