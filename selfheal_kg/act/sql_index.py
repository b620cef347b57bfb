"""Suggest an index from a query's plan (SQLite and PostgreSQL).

Used by the database playbooks: the slow statement is explained, a full scan filtered on a
column of its table proposes ``(table, column)``; the executor's ``create_index`` makes it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from psycopg import sql

from selfheal_kg.act.sql_db import check_select, quote

_WHERE_COLUMN = re.compile(
    r"(?:\b[A-Za-z_]\w*\.)?\b([A-Za-z_]\w*)\s*(?:=|<>|!=|<=|>=|<|>|\bIN\b|\bLIKE\b|\bBETWEEN\b)",
    re.IGNORECASE,
)
_PG_FILTER_COLUMN = re.compile(r"\(*([A-Za-z_]\w*)\)*(?:::[\w ]+)?\s*(?:=|<>|<=|>=|<|>|~~)")


def suggest_index(conn: sqlite3.Connection | Any, query: str) -> tuple[str, str] | None:
    """Propose ``(table, column)`` for an index from the query's plan, or ``None``.

    SQLite: a ``SCAN <table>`` step of ``EXPLAIN QUERY PLAN`` plus a column of that table
    compared in the WHERE clause. PostgreSQL: a ``Seq Scan`` node of ``EXPLAIN (FORMAT JSON)``
    with a ``Filter`` on a column of its relation.
    """
    text = check_select(query)
    if isinstance(conn, sqlite3.Connection):
        return _suggest_sqlite(conn, text)
    return _suggest_postgres(conn, text)


def _suggest_sqlite(conn: sqlite3.Connection, query: str) -> tuple[str, str] | None:
    where = re.split(r"(?i)\bWHERE\b", query, maxsplit=1)
    if len(where) < 2:
        return None
    for row in conn.execute("EXPLAIN QUERY PLAN " + query).fetchall():
        match = re.match(r"SCAN (?:TABLE )?(\w+)", str(row[3]))
        if match is None or "USING" in str(row[3]):
            continue
        table = match.group(1)
        columns = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({quote(table)})")}
        for column in _WHERE_COLUMN.findall(where[1]):
            if column in columns:
                return table, column
    return None


def _suggest_postgres(conn: Any, query: str) -> tuple[str, str] | None:
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(query)).fetchone()[0]
        for node in _plan_nodes(plan[0]["Plan"]):
            if node.get("Node Type") != "Seq Scan" or "Filter" not in node:
                continue
            table = str(node["Relation Name"])
            rows = conn.execute("SELECT column_name FROM information_schema.columns"
                                " WHERE table_name = %s", (table,)).fetchall()
            columns = {str(r[0]) for r in rows}
            for column in _PG_FILTER_COLUMN.findall(str(node["Filter"])):
                if column in columns:
                    return table, column
    return None


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)
