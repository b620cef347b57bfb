"""The SQL executor's connections: one class per dialect behind one protocol.

Identifiers reach SQL only quoted: doubled double quotes for SQLite (:func:`quote`),
``psycopg.sql.Identifier`` for PostgreSQL. Queries to explain must be one SELECT
(:func:`check_select`); PostgreSQL explains them in a read-only transaction.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any, Protocol

import psycopg
from psycopg import sql

from selfheal_kg.model import FactValue

UNSET = "unset"
"""Rollback-point value of a PostgreSQL setting the database did not set (restore: RESET)."""


class Db(Protocol):
    """What the executor asks of a database."""

    conn: Any  # the driver's connection (the index suggestion reads plans through it)

    def explain(self, query: str) -> str: ...
    def indexes(self, table: str) -> dict[str, str]: ...
    def create_index(self, index: str, table: str, column: str) -> None: ...
    def drop_index(self, index: str) -> None: ...
    def run_definition(self, definition: str) -> None: ...
    def get_setting(self, name: str) -> FactValue: ...
    def set_setting(self, name: str, value: FactValue) -> None: ...
    def close(self) -> None: ...


def check_select(query: str) -> str:
    """Return ``query`` without a trailing ``;`` when it is one SELECT; raise ``ValueError``."""
    text = query.strip().removesuffix(";")
    if ";" in text or not re.match(r"(?is)\s*(select|with)\b", text):
        raise ValueError("only a single SELECT (or WITH ... SELECT) statement is accepted")
    return text


class SqliteDb:
    """A SQLite file, opened in autocommit mode."""

    def __init__(self, path: str) -> None:
        # Autocommit: each DDL statement is its own transaction. No statement cache: a cached
        # EXPLAIN QUERY PLAN is not re-planned after an index change and reports a stale plan.
        self.conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, cached_statements=0
        )

    def explain(self, query: str) -> str:
        rows = self.conn.execute("EXPLAIN QUERY PLAN " + check_select(query)).fetchall()
        return "; ".join(str(r[3]) for r in rows)

    def indexes(self, table: str) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        ).fetchall()
        return {str(name): str(ddl or "") for name, ddl in rows}

    def create_index(self, index: str, table: str, column: str) -> None:
        self.conn.execute(f"CREATE INDEX {quote(index)} ON {quote(table)} ({quote(column)})")

    def drop_index(self, index: str) -> None:
        self.conn.execute(f"DROP INDEX {quote(index)}")

    def run_definition(self, definition: str) -> None:
        self.conn.execute(definition)

    def get_setting(self, name: str) -> FactValue:
        row = self.conn.execute(f"PRAGMA {name}").fetchone()  # name from SQLITE_PRAGMAS
        return int(row[0])

    def set_setting(self, name: str, value: FactValue) -> None:
        # PRAGMA takes no bound parameters: the name is allow-listed, the value a checked int.
        self.conn.execute(f"PRAGMA {name} = {int(value)}")

    def close(self) -> None:
        self.conn.close()


def quote(identifier: str) -> str:
    """Quote an SQLite identifier (double quotes, inner quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


class PostgresDb:
    """A PostgreSQL database (a conninfo), in autocommit mode."""

    def __init__(self, dsn: str) -> None:
        self.conn: Any = psycopg.connect(dsn, autocommit=True)

    def explain(self, query: str) -> str:
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION READ ONLY")
            rows = self.conn.execute(sql.SQL("EXPLAIN ") + sql.SQL(check_select(query)))
            return " | ".join(str(r[0]).strip() for r in rows.fetchall())

    def indexes(self, table: str) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s", (table,)
        ).fetchall()
        return {str(name): str(ddl) for name, ddl in rows}

    def create_index(self, index: str, table: str, column: str) -> None:
        stmt = sql.SQL("CREATE INDEX {} ON {} ({})").format(
            sql.Identifier(index), sql.Identifier(table), sql.Identifier(column)
        )
        self.conn.execute(stmt)

    def drop_index(self, index: str) -> None:
        self.conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))

    def run_definition(self, definition: str) -> None:
        self.conn.execute(sql.SQL(definition))

    def get_setting(self, name: str) -> FactValue:
        """Return the database-level value of ``name`` (``UNSET`` when the database has none)."""
        row = self.conn.execute(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d"
            " ON d.oid = s.setdatabase WHERE d.datname = current_database() AND s.setrole = 0"
        ).fetchone()
        for item in (row[0] or []) if row else []:
            key, _, value = str(item).partition("=")
            if key == name:
                return value
        return UNSET

    def set_setting(self, name: str, value: FactValue) -> None:
        self.conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            sql.Identifier(self.database()), sql.Identifier(name), sql.Literal(str(value))))

    def reset_setting(self, name: str) -> None:
        self.conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(
            sql.Identifier(self.database()), sql.Identifier(name)))

    def database(self) -> str:
        return str(self.conn.execute("SELECT current_database()").fetchone()[0])

    def close(self) -> None:
        self.conn.close()
