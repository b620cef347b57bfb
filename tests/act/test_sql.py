"""The SQL executor and index suggestion: SQLite always, PostgreSQL when SELFHEAL_PG_DSN is set.

The PostgreSQL tests use a real server (``@pytest.mark.postgres``); each test creates its
own uniquely named table and drops it afterwards.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.sql import SqlDatabase, SqlExecutor
from selfheal_kg.act.sql_db import check_select
from selfheal_kg.act.sql_index import suggest_index
from selfheal_kg.errors import ActionError, UnsafeParameter

QUERY = "SELECT id, total FROM orders WHERE customer_id = 42"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, total REAL,"
                 " code TEXT UNIQUE)")
    conn.executemany("INSERT INTO orders (customer_id, total, code) VALUES (?, ?, ?)",
                     [(i % 50, i * 1.5, f"c{i}") for i in range(200)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def ex(sqlite_db: Path) -> Iterator[SqlExecutor]:
    executor = SqlExecutor({"shopdb": SqlDatabase("sqlite", str(sqlite_db))},
                           queries={"orders-by-customer": QUERY})
    yield executor
    executor.close()


def test_explain_returns_the_plan(ex: SqlExecutor) -> None:
    report = ex.execute("sql_explain", "shopdb", {"query": "orders-by-customer"})
    assert report.ok and "SCAN orders" in report.detail
    with pytest.raises(UnsafeParameter, match="unknown query"):
        ex.execute("sql_explain", "shopdb", {"query": "DROP TABLE orders"})


def test_suggest_then_create_index_and_restore(ex: SqlExecutor, sqlite_db: Path) -> None:
    with sqlite3.connect(sqlite_db) as conn:
        assert suggest_index(conn, QUERY) == ("orders", "customer_id")
    params = {"table": "orders", "column": "customer_id"}
    point = ex.snapshot("create_index", "shopdb", params)
    assert point["existed"] is False and point["index"] == "shk_orders_customer_id_idx"
    assert point["indexes"] == '["sqlite_autoindex_orders_1"]'
    assert ex.execute("create_index", "shopdb", params).ok
    plan = ex.execute("sql_explain", "shopdb", {"query": "orders-by-customer"}).detail
    assert "USING INDEX shk_orders_customer_id_idx" in plan
    with sqlite3.connect(sqlite_db) as conn:
        assert suggest_index(conn, QUERY) is None
    assert ex.restore("shopdb", point).ok
    assert "SCAN orders" in ex.execute("sql_explain", "shopdb", {"query": "orders-by-customer"}
                                       ).detail


def test_an_index_suggested_by_the_plan_of_a_named_query_is_created_and_restored(
    ex: SqlExecutor,
) -> None:
    params = {"query": "orders-by-customer"}
    point = ex.snapshot("create_index", "shopdb", params)
    assert (point["table"], point["index"], point["existed"]) == (
        "orders", "shk_orders_customer_id_idx", False)
    report = ex.execute("create_index", "shopdb", params)
    assert report.ok and report.detail == (
        "created index shk_orders_customer_id_idx on orders(customer_id)"
        " (suggested by the plan of orders-by-customer)")
    plan = ex.execute("sql_explain", "shopdb", params).detail
    assert "USING INDEX shk_orders_customer_id_idx" in plan
    # the plan uses the index now: nothing more to suggest, and the step says why
    with pytest.raises(ActionError, match=r"suggests no index .*USING INDEX"):
        ex.execute("create_index", "shopdb", params)
    assert ex.restore("shopdb", point).ok
    assert "SCAN orders" in ex.execute("sql_explain", "shopdb", params).detail


@pytest.mark.parametrize("params", [
    {"query": "orders-by-customer", "table": "orders", "column": "total"},
    {"query": "orders-by-customer", "table": "orders"},
    {"table": "orders"},
    {},
])
def test_create_index_takes_a_query_or_a_table_and_column(
    ex: SqlExecutor, params: dict[str, Any]
) -> None:
    with pytest.raises(UnsafeParameter, match="either 'query' or both 'table' and 'column'"):
        ex.snapshot("create_index", "shopdb", params)


def test_create_index_refuses_a_query_it_does_not_know(ex: SqlExecutor) -> None:
    with pytest.raises(UnsafeParameter, match="unknown query"):
        ex.execute("create_index", "shopdb", {"query": "SELECT * FROM orders"})


def test_drop_index_and_restore_recreates_it(ex: SqlExecutor) -> None:
    ex.execute("create_index", "shopdb", {"table": "orders", "column": "total", "index": "ix_t"})
    params = {"table": "orders", "index": "ix_t"}
    point = ex.snapshot("drop_index", "shopdb", params)
    assert point["existed"] is True
    assert str(point["definition"]).startswith("CREATE INDEX")
    assert ex.execute("drop_index", "shopdb", params).ok
    assert "ix_t" not in ex.snapshot("drop_index", "shopdb", params)["indexes"]  # type: ignore[operator]
    assert ex.restore("shopdb", point).ok
    assert ex.snapshot("drop_index", "shopdb", params)["existed"] is True


def test_constraint_index_is_not_dropped(ex: SqlExecutor) -> None:
    with pytest.raises(ActionError, match="no droppable index"):
        ex.execute("drop_index", "shopdb",
                   {"table": "orders", "index": "sqlite_autoindex_orders_1"})


def test_pragma_setting_and_restore(ex: SqlExecutor) -> None:
    params = {"name": "cache_size", "value": 5000}
    point = ex.snapshot("sql_setting", "shopdb", params)
    assert point == {"setting": "cache_size", "value": -2000}
    assert ex.execute("sql_setting", "shopdb", params).ok
    assert ex.snapshot("sql_setting", "shopdb", params)["value"] == 5000
    assert ex.restore("shopdb", point).ok
    assert ex.snapshot("sql_setting", "shopdb", params)["value"] == -2000


@pytest.mark.parametrize(
    ("action", "params", "reason"),
    [
        ("create_index", {"table": 'orders"; DROP TABLE orders; --', "column": "id"}, "table"),
        ("create_index", {"table": "orders", "column": "id) ; DROP"}, "column"),
        ("create_index", {"table": "orders", "column": "id", "index": "1bad"}, "index"),
        ("sql_setting", {"name": "journal_mode", "value": 1}, "not one of"),
        ("sql_setting", {"name": "cache_size", "value": "1; DROP TABLE orders"}, "must be int"),
        ("sql_setting", {"name": "cache_size"}, "exactly"),
    ],
)
def test_unsafe_sql_params_are_refused(
    ex: SqlExecutor, sqlite_db: Path, action: str, params: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UnsafeParameter, match=reason):
        ex.execute(action, "shopdb", params)
    with sqlite3.connect(sqlite_db) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (200,)


def test_database_errors_are_action_errors(ex: SqlExecutor) -> None:
    with pytest.raises(ActionError, match="no such table"):
        ex.execute("create_index", "shopdb", {"table": "nope", "column": "x"})
    with pytest.raises(ActionError, match="no database"):
        ex.execute("create_index", "other", {"table": "orders", "column": "id"})


def test_only_a_single_select_is_explained() -> None:
    assert check_select("SELECT 1;") == "SELECT 1"
    for bad in ("DELETE FROM orders", "SELECT 1; DROP TABLE orders", "PRAGMA x"):
        with pytest.raises(ValueError, match="single SELECT"):
            check_select(bad)
    with pytest.raises(ValueError):
        SqlExecutor({}, queries={"evil": "SELECT 1; DROP TABLE orders"})


def test_is_an_executor(ex: SqlExecutor) -> None:
    executor: Executor = ex
    assert executor.actions == frozenset(
        {"sql_explain", "create_index", "drop_index", "sql_setting"})


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[tuple[SqlExecutor, str, Any]]:
    import psycopg

    dsn = pg_dsn

    table = f"orders_{uuid.uuid4().hex[:8]}"
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, customer_id int, total numeric)")
    conn.execute(f"INSERT INTO {table} (customer_id, total) "
                 "SELECT g % 500, g FROM generate_series(1, 20000) g")
    conn.execute(f"ANALYZE {table}")
    query = f"SELECT id FROM {table} WHERE customer_id = 42"
    executor = SqlExecutor({"pgdb": SqlDatabase("postgresql", dsn)}, queries={"by-customer": query})
    yield executor, table, conn
    executor.close()
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.close()


@pytest.mark.postgres
def test_pg_suggest_create_and_restore(pg: tuple[SqlExecutor, str, Any]) -> None:
    ex, table, conn = pg
    assert suggest_index(conn, f"SELECT id FROM {table} WHERE customer_id = 42") == (
        table, "customer_id")
    assert "Seq Scan" in ex.execute("sql_explain", "pgdb", {"query": "by-customer"}).detail
    params = {"table": table, "column": "customer_id", "index": f"ix_{table}"}
    point = ex.snapshot("create_index", "pgdb", params)
    assert point["existed"] is False
    assert ex.execute("create_index", "pgdb", params).ok
    assert f"ix_{table}" in ex.execute("sql_explain", "pgdb", {"query": "by-customer"}).detail
    drop_point = ex.snapshot("drop_index", "pgdb", {"table": table, "index": f"ix_{table}"})
    assert ex.execute("drop_index", "pgdb", {"table": table, "index": f"ix_{table}"}).ok
    assert ex.restore("pgdb", drop_point).ok
    assert ex.snapshot("drop_index", "pgdb", {"table": table, "index": f"ix_{table}"})["existed"]
    assert ex.restore("pgdb", point).ok
    assert not ex.snapshot("drop_index", "pgdb", {"table": table, "index": f"ix_{table}"})[
        "existed"]


@pytest.mark.postgres
def test_pg_index_suggested_by_the_plan_is_created(pg: tuple[SqlExecutor, str, Any]) -> None:
    ex, table, _ = pg
    point = ex.snapshot("create_index", "pgdb", {"query": "by-customer"})
    assert (point["table"], point["existed"]) == (table, False)
    report = ex.execute("create_index", "pgdb", {"query": "by-customer"})
    assert report.ok and f"on {table}(customer_id) (suggested by the plan" in report.detail
    assert f"shk_{table}_customer_id_idx" in ex.execute(
        "sql_explain", "pgdb", {"query": "by-customer"}).detail
    assert ex.restore("pgdb", point).ok
    assert "Seq Scan" in ex.execute("sql_explain", "pgdb", {"query": "by-customer"}).detail


@pytest.mark.postgres
def test_pg_setting_and_restore(pg: tuple[SqlExecutor, str, Any]) -> None:
    ex, _, _ = pg
    params = {"name": "work_mem", "value": "64MB"}
    point = ex.snapshot("sql_setting", "pgdb", params)
    assert ex.execute("sql_setting", "pgdb", params).ok
    assert ex.snapshot("sql_setting", "pgdb", params)["value"] == "64MB"
    assert ex.restore("pgdb", point).ok
    assert ex.snapshot("sql_setting", "pgdb", params)["value"] == point["value"]
    with pytest.raises(UnsafeParameter):
        ex.execute("sql_setting", "pgdb", {"name": "work_mem", "value": "1'; DROP TABLE x; --"})


@pytest.mark.postgres
def test_pg_constraint_index_cannot_be_dropped(pg: tuple[SqlExecutor, str, Any]) -> None:
    ex, table, _ = pg
    with pytest.raises(ActionError, match="constraint"):
        ex.execute("drop_index", "pgdb", {"table": table, "index": f"{table}_pkey"})


@pytest.mark.postgres
def test_pg_explain_is_read_only(pg: tuple[SqlExecutor, str, Any]) -> None:
    _, table, conn = pg
    with pytest.raises(ValueError, match="single SELECT"):
        suggest_index(conn, f"SELECT 1; DROP TABLE {table}")
    assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 20000
