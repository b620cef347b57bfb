"""The shop's database as selfheal sees it: the dropped-index fault and its repair by SQL.

SQLite always; PostgreSQL too when SELFHEAL_PG_DSN is set (in a schema of its own).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from selfheal_kg.act.registry import by_action
from selfheal_kg.act.sql import SqlDatabase, SqlExecutor
from selfheal_kg.act.sql_index import suggest_index
from selfheal_kg.decide.playbook import load_playbook
from selfheal_kg.demo import database, faults
from selfheal_kg.demo.shop import Shop
from selfheal_kg.demo.show import shop_executors
from selfheal_kg.errors import ActionError, NotFound, UnsafeParameter
from selfheal_kg.paths import shipped

# the shop's scripts are not a package: import them as service.py does
sys.path.insert(0, str(shipped("demo") / "shop"))
from db import SEED_ROWS, init_postgres, init_sqlite

ROWS = 5_000  # enough for a scan to show in the plan; fast to insert


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    """A freshly initialised stock table, as the inventory creates it."""
    if request.param == "sqlite":
        path = tmp_path / "inventory-db.sqlite"
        init_sqlite(path)
        yield SqlDatabase("sqlite", str(path))
        return
    scoped = request.getfixturevalue("pg_schema_dsn")
    init_postgres(scoped)
    yield SqlDatabase("postgresql", scoped)


def test_the_fault_drops_the_index_and_grows_the_table(db: SqlDatabase) -> None:
    assert database.INDEX in database.lookup_indexes(db)
    assert database.drop_lookup_index(db, ROWS) is True
    assert database.INDEX not in database.lookup_indexes(db)
    assert database.drop_lookup_index(db, ROWS) is False  # again: nothing left to drop
    assert _count(db) == ROWS


def test_the_repair_finds_and_creates_the_missing_index_and_can_undo_it(db: SqlDatabase) -> None:
    database.drop_lookup_index(db, ROWS)
    if db.dialect == "sqlite":
        conn: object = sqlite3.connect(db.dsn)
    else:
        conn = psycopg.connect(db.dsn, autocommit=True)
        conn.execute("SET enable_indexscan = on")  # type: ignore[attr-defined]
    try:
        assert suggest_index(conn, database.QUERIES["stock-lookup"]) == ("stock", "sku")
    finally:
        conn.close()  # type: ignore[attr-defined]
    ex = database.sql_executor_for({"inventory-db": db})
    params = {"table": "stock", "column": "sku"}
    point = ex.snapshot("create_index", "inventory-db", params)
    assert ex.execute("create_index", "inventory-db", params).ok
    assert "shk_stock_sku_idx" in database.lookup_indexes(db)
    # the index a repair created counts: reverting the fault adds no second one
    database.restore_lookup_index(db)
    assert database.INDEX not in database.lookup_indexes(db)
    # the rollback point is the index list: restoring it drops what the step created
    assert ex.restore("inventory-db", point).ok
    assert "shk_stock_sku_idx" not in database.lookup_indexes(db)
    ex.close()


def test_reverting_the_fault_recreates_the_lookup_index(db: SqlDatabase) -> None:
    database.drop_lookup_index(db, ROWS)
    database.restore_lookup_index(db)
    assert database.INDEX in database.lookup_indexes(db)
    assert _count(db) == ROWS


def test_the_explained_lookup_scans_without_its_index(tmp_path: Path) -> None:
    path = tmp_path / "inventory-db.sqlite"
    init_sqlite(path)
    dbs = {"inventory-db": SqlDatabase("sqlite", str(path))}
    before = _explain(dbs)
    database.drop_lookup_index(dbs["inventory-db"], ROWS)
    after = _explain(dbs)
    assert "USING INDEX stock_sku_idx" in before
    assert after.startswith("SCAN stock")


def test_the_shop_declares_its_database_for_the_executor(tmp_path: Path) -> None:
    shop = Shop("http://127.0.0.1:9", tmp_path)
    assert database.databases(shop) == {
        "inventory-db": SqlDatabase("sqlite", str(tmp_path / "inventory-db.sqlite"))}
    assert database.database_of(shop, "inventory").dialect == "sqlite"
    with pytest.raises(NotFound, match="no database"):
        database.database_of(shop, "payment")
    pg = Shop("http://127.0.0.1:9", tmp_path, db_dsn="postgresql://u@127.0.0.1/x")
    assert database.databases(pg)["inventory-db"] == SqlDatabase(
        "postgresql", "postgresql://u@127.0.0.1/x")


def test_the_fault_registry_checks_its_parameters_and_the_database(tmp_path: Path) -> None:
    shop = Shop("http://127.0.0.1:9", tmp_path)
    with pytest.raises(UnsafeParameter, match="rows"):
        faults.inject(shop, "dropped-index", "inventory", {"rows": "many"})
    # the inventory never ran: no stock table to grow
    with pytest.raises(ActionError, match="stock"):
        faults.inject(shop, "dropped-index", "inventory", {"rows": 10})
    init_sqlite(shop.db_file("inventory-db"))
    injected = faults.inject(shop, "dropped-index", "inventory", {"rows": SEED_ROWS + 10})
    assert injected.before == {"existed": True}
    faults.revert(shop, injected)
    db = database.database_of(shop, "inventory")
    assert database.INDEX in database.lookup_indexes(db)


def _explain(dbs: dict[str, SqlDatabase]) -> str:
    # A fresh connection each time: SQLite plans EXPLAIN QUERY PLAN with the schema its
    # connection last read, which another connection's DROP INDEX does not refresh.
    ex = database.sql_executor_for(dbs)
    try:
        return ex.execute("sql_explain", "inventory-db", {"query": "stock-lookup"}).detail
    finally:
        ex.close()


def _count(db: SqlDatabase) -> int:
    if db.dialect == "sqlite":
        conn = sqlite3.connect(db.dsn)
        try:
            return int(conn.execute("SELECT count(*) FROM stock").fetchone()[0])
        finally:
            conn.close()
    with psycopg.connect(db.dsn) as pg:
        row = pg.execute("SELECT count(*) FROM stock").fetchone()
        return int(row[0]) if row else 0


def test_the_shipped_playbook_repairs_the_fault_with_the_demo_executors(tmp_path: Path) -> None:
    shop = Shop("http://127.0.0.1:9", tmp_path)
    init_sqlite(shop.db_file("inventory-db"))
    injected = faults.inject(shop, "dropped-index", "inventory", {"rows": ROWS})
    pb = load_playbook(shipped("playbooks") / "add-missing-index.yaml")
    assert "SlowQuery" in pb.handles and pb.target_types == ("Database",)
    executors = by_action(shop_executors(shop))
    details = []
    for step in pb.steps:
        report = executors[step.action].execute(step.action, "inventory-db", dict(step.params))
        assert report.ok, report.detail
        details.append(report.detail)
    assert details[0].startswith("SCAN stock")  # the plan the incident records
    assert details[1] == ("created index shk_stock_sku_idx on stock(sku)"
                          " (suggested by the plan of stock-lookup)")
    db = database.database_of(shop, "inventory")
    assert _explain({"inventory-db": db}).startswith("SEARCH stock USING INDEX shk_stock_sku_idx")
    faults.revert(shop, injected)  # the repair's index stands for the lookup index
    assert database.INDEX not in database.lookup_indexes(db)
    sql = executors["create_index"]
    assert isinstance(sql, SqlExecutor)
    sql.close()
