"""The shop's databases as the demo's selfheal sees them: where they are, and the slow-query fault.

The inventory looks items up by ``sku`` in its ``stock`` table (``demo/shop/db.py``), in an
SQLite file or, with ``Shop(db_dsn=...)``, in PostgreSQL. The slow-query fault fills the
table with many rows and drops the index on ``sku``: every lookup then scans the table.
The repair (playbook ``add-missing-index``) goes through ``SqlExecutor`` on the database
node (``inventory-db``), explaining the configured lookup and creating the index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg

from selfheal_kg.act.sql import SqlDatabase, SqlExecutor
from selfheal_kg.demo.shop import Shop
from selfheal_kg.errors import ActionError, NotFound

TABLE = "stock"
COLUMN = "sku"
INDEX = "stock_sku_idx"
# Named queries ``sql_explain`` may run (never a query text taken from telemetry).
QUERIES = {"stock-lookup": "SELECT qty FROM stock WHERE sku = 'sku-1'"}
# Rows the fault grows the table to: a scan then takes ~10 ms (SQLite) / ~5 ms (PostgreSQL)
# against ~0.3 ms through the index. Fewer for PostgreSQL: its scans of a bigger table go
# parallel and take every core of a small machine, slowing the whole shop, not one lookup.
FILL_ROWS = {"sqlite": 300_000, "postgresql": 100_000}
_BATCH = 20_000


def databases(shop: Shop) -> dict[str, SqlDatabase]:
    """Return database node name → where it is, for every declared database of the shop."""
    out: dict[str, SqlDatabase] = {}
    for service in shop.declaration.services:
        if service.database is None:
            continue
        out[service.database] = (
            SqlDatabase("postgresql", shop.db_dsn) if shop.db_dsn
            else SqlDatabase("sqlite", str(shop.db_file(service.database)))
        )
    return out


def sql_executor(shop: Shop) -> SqlExecutor:
    """Return the ``SqlExecutor`` over the shop's databases, with the named lookups."""
    return sql_executor_for(databases(shop))


def sql_executor_for(dbs: Mapping[str, SqlDatabase]) -> SqlExecutor:
    """Return an ``SqlExecutor`` over ``dbs`` (node name → database) with the named lookups."""
    return SqlExecutor(dbs, QUERIES)


def database_of(shop: Shop, service: str) -> SqlDatabase:
    """Return the database ``service`` reads; raise ``NotFound`` when it has none."""
    name = shop.declaration.service(service).database
    if name is None:
        raise NotFound(f"shop service {service!r} has no database")
    return databases(shop)[name]


def drop_lookup_index(db: SqlDatabase, rows: int | None = None) -> bool:
    """Grow the table to ``rows`` rows (default by dialect) and drop the lookup index.

    Returns whether the index existed.

    Raises:
        ActionError: the database refused or could not be reached.
    """
    rows = FILL_ROWS[db.dialect] if rows is None else rows
    with _connection(db) as (conn, mark):
        count = int(conn.execute("SELECT count(*) FROM stock").fetchone()[0])
        for first in range(count + 1, rows + 1, _BATCH):
            batch = [(f"sku-{i}", i % 97) for i in range(first, min(first + _BATCH, rows + 1))]
            _insert(conn, db, batch, mark)
        existed = INDEX in _indexes(conn, db)
        if existed:
            conn.execute(f"DROP INDEX {INDEX}")
        if db.dialect == "postgresql":
            conn.execute(f"ANALYZE {TABLE}")
        return existed


def restore_lookup_index(db: SqlDatabase) -> None:
    """Create the lookup index again unless some index on ``sku`` exists (a repair's)."""
    with _connection(db) as (conn, _mark):
        on_column = (f"({COLUMN})", f'("{COLUMN}")')
        if not any(c in ddl for ddl in _indexes(conn, db).values() for c in on_column):
            conn.execute(f"CREATE INDEX {INDEX} ON {TABLE} ({COLUMN})")


def reset(db: SqlDatabase) -> None:
    """Drop the stock table (the inventory creates it afresh when it starts)."""
    with _connection(db) as (conn, _mark):
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


def lookup_indexes(db: SqlDatabase) -> dict[str, str]:
    """Return index name → definition of the stock table."""
    with _connection(db) as (conn, _mark):
        return _indexes(conn, db)


@contextmanager
def _connection(db: SqlDatabase) -> Iterator[tuple[Any, str]]:
    """Yield an autocommit connection and its parameter mark; errors become ``ActionError``."""
    try:
        if db.dialect == "sqlite":
            lite = sqlite3.connect(db.dsn, isolation_level=None, timeout=5.0)
            try:
                yield lite, "?"
            finally:
                lite.close()
        else:
            with psycopg.connect(db.dsn, autocommit=True, connect_timeout=5) as pg:
                yield pg, "%s"
    except (sqlite3.Error, psycopg.Error) as exc:
        raise ActionError("database", db.dialect, f"{type(exc).__name__}: {exc}") from exc


def _insert(conn: Any, db: SqlDatabase, rows: list[tuple[str, int]], mark: str) -> None:
    if db.dialect == "sqlite":
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO stock (sku, qty) VALUES (?, ?)", rows)
        conn.execute("COMMIT")
    else:
        with conn.cursor() as cur, cur.copy(f"COPY {TABLE} ({COLUMN}, qty) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _indexes(conn: Any, db: SqlDatabase) -> dict[str, str]:
    if db.dialect == "sqlite":
        found = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (TABLE,)
        ).fetchall()
    else:
        found = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s", (TABLE,)
        ).fetchall()
    return {str(name): str(ddl or "") for name, ddl in found}
