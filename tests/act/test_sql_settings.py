"""``sql_setting`` on PostgreSQL: a database-level, reversible change (real server).

Skipped without SELFHEAL_PG_DSN. The tests change settings of the test database itself
(``ALTER DATABASE``): each puts the value it found back, whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from selfheal_kg.act.sql import SqlDatabase, SqlExecutor
from selfheal_kg.act.sql_db import UNSET
from selfheal_kg.errors import UnsafeParameter

pytestmark = pytest.mark.postgres


@pytest.fixture
def ex(pg_dsn: str) -> Iterator[SqlExecutor]:
    executor = SqlExecutor({"pgdb": SqlDatabase("postgresql", pg_dsn)})
    saved = [executor.snapshot("sql_setting", "pgdb", {"name": n, "value": v})
             for n, v in (("work_mem", "4MB"), ("effective_cache_size", "1GB"))]
    yield executor
    for point in saved:
        executor.restore("pgdb", point)
    executor.close()


def new_session_value(pg_dsn: str, name: str) -> str:
    """Return what a freshly opened session sees for ``name``."""
    with psycopg.connect(pg_dsn) as conn:
        row: Any = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        return str(row[0])


def test_new_sessions_see_the_change_and_restore_puts_a_set_value_back(
    ex: SqlExecutor, pg_dsn: str
) -> None:
    ex.execute("sql_setting", "pgdb", {"name": "work_mem", "value": "3MB"})
    params = {"name": "work_mem", "value": "24MB"}
    point = ex.snapshot("sql_setting", "pgdb", params)
    assert point == {"setting": "work_mem", "value": "3MB"}
    report = ex.execute("sql_setting", "pgdb", params)
    assert report.ok and "new sessions" in report.detail
    assert new_session_value(pg_dsn, "work_mem") == "24MB"
    assert ex.snapshot("sql_setting", "pgdb", params)["value"] == "24MB"
    assert ex.restore("pgdb", point).ok
    assert new_session_value(pg_dsn, "work_mem") == "3MB"


def test_restore_of_an_unset_value_resets_it(ex: SqlExecutor, pg_dsn: str) -> None:
    params = {"name": "effective_cache_size", "value": "1GB"}
    ex.restore("pgdb", {"setting": "effective_cache_size", "value": UNSET})
    default = new_session_value(pg_dsn, "effective_cache_size")
    assert default != "1GB"  # the server's own value, or the change below proves nothing
    point = ex.snapshot("sql_setting", "pgdb", params)
    assert point == {"setting": "effective_cache_size", "value": UNSET}
    ex.execute("sql_setting", "pgdb", params)
    assert new_session_value(pg_dsn, "effective_cache_size") == "1GB"
    report = ex.restore("pgdb", point)
    assert report.ok and "reset" in report.detail
    assert new_session_value(pg_dsn, "effective_cache_size") == default
    assert ex.snapshot("sql_setting", "pgdb", params)["value"] == UNSET


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"name": "work_mem; DROP TABLE x", "value": "8MB"}, "is not one of"),
        ({"name": "shared_buffers", "value": "1GB"}, "is not one of"),
        ({"name": "work_mem", "value": "8MB'; ALTER ROLE selfheal SUPERUSER; --"}, "must match"),
        ({"name": "work_mem", "value": "64GB"}, "outside"),
        ({"name": "work_mem", "value": "8"}, "outside"),  # bare number: kB, under 64kB
        ({"name": "random_page_cost", "value": "1000"}, "outside"),
        ({"name": "effective_cache_size", "value": "1000"}, "must match"),  # 8kB pages: no
        ({"name": "work_mem", "value": 8}, "must be str"),
    ],
)
def test_hostile_settings_are_refused_and_change_nothing(
    ex: SqlExecutor, pg_dsn: str, params: dict[str, Any], reason: str
) -> None:
    ex.execute("sql_setting", "pgdb", {"name": "work_mem", "value": "3MB"})
    with pytest.raises(UnsafeParameter, match=reason):
        ex.execute("sql_setting", "pgdb", params)
    assert new_session_value(pg_dsn, "work_mem") == "3MB"
    with pytest.raises(UnsafeParameter, match="is not one of"):
        ex.restore("pgdb", {"setting": "shared_buffers", "value": UNSET})


def test_restore_puts_back_a_value_beyond_the_repair_bounds(ex: SqlExecutor, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # as a DBA might have set it
        db = conn.execute("SELECT current_database()").fetchone()
        assert db is not None
        conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '3 GB'").format(
            sql.Identifier(db[0])))
    point = ex.snapshot("sql_setting", "pgdb", {"name": "work_mem", "value": "64MB"})
    assert point["value"] == "3 GB"
    ex.execute("sql_setting", "pgdb", {"name": "work_mem", "value": "64MB"})
    assert ex.restore("pgdb", point).ok
    assert new_session_value(pg_dsn, "work_mem") == "3GB"
    with pytest.raises(UnsafeParameter, match="not plain"):
        ex.restore("pgdb", {"setting": "work_mem", "value": "1'; DROP TABLE x; --"})
