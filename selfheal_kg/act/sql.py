"""Explain queries, create and drop indexes, change settings: SQLite and PostgreSQL.

Identifiers (table, column, index) must match ``[A-Za-z_][A-Za-z0-9_]{0,62}`` and are then
quoted by the driver's identifier quoting (``psycopg.sql.Identifier``; doubled quotes for
SQLite). Queries to explain are named in the executor's configuration, never taken from
telemetry, and must be one SELECT.

``sql_setting`` changes one allow-listed setting to a checked, bounded value:

- PostgreSQL: ``ALTER DATABASE <current database> SET <name> = <value>`` (composed with
  ``psycopg.sql``), which the database owner may run. The value is stored in the catalog
  (``pg_db_role_setting``) and survives restarts; **new sessions** pick it up, sessions open
  already keep their value (a connection pool must recycle its connections). A per-role
  setting (``ALTER ROLE ... SET``) or a session ``SET`` still overrides it. The rollback
  point is the database-level value before (``"unset"`` when there was none); restore sets
  it back or ``RESET``s it.
- SQLite: a ``PRAGMA`` on the executor's own connection only (PRAGMAs are per connection):
  other processes using the file never see it. Kept for completeness, not a repair of
  another process.

https://www.postgresql.org/docs/current/sql-alterdatabase.html
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import psycopg

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import ParamSpec, Schema, check_identifier, check_target, validate
from selfheal_kg.act.sql_db import UNSET, Db, PostgresDb, SqliteDb, check_select
from selfheal_kg.act.sql_index import suggest_index
from selfheal_kg.errors import ActionError, UnsafeParameter
from selfheal_kg.model import FactValue

_IDENT = ParamSpec("str", required=True, max_length=63)
_SCHEMAS: dict[str, Schema] = {
    "sql_explain": {"query": ParamSpec("str", required=True, max_length=64)},
    # either ``query`` (the index is suggested from its plan) or ``table`` and ``column``
    "create_index": {"query": ParamSpec("str", max_length=64),
                     "table": ParamSpec("str", max_length=63),
                     "column": ParamSpec("str", max_length=63), "index": ParamSpec("str")},
    "drop_index": {"table": _IDENT, "index": _IDENT},
    "sql_setting": {"name": ParamSpec("str", required=True), "value": ParamSpec("str")},
}
# Settings one may change: SQLite PRAGMAs (integers) and PostgreSQL GUCs (text).
SQLITE_PRAGMAS: dict[str, ParamSpec] = {
    "cache_size": ParamSpec("int", minimum=-1_000_000, maximum=1_000_000),
    "busy_timeout": ParamSpec("int", minimum=0, maximum=600_000),
    "synchronous": ParamSpec("int", minimum=0, maximum=3),
    "temp_store": ParamSpec("int", minimum=0, maximum=2),
    "mmap_size": ParamSpec("int", minimum=0, maximum=2**31),
}
_PG_TIME = r"[0-9]{1,9}(us|ms|s|min|h|d)?"
_PG_MEMORY = r"[0-9]{1,9}(kB|MB|GB)?"
PG_SETTINGS: dict[str, ParamSpec] = {
    "work_mem": ParamSpec("str", pattern=_PG_MEMORY),
    "maintenance_work_mem": ParamSpec("str", pattern=_PG_MEMORY),
    # unit required: a bare number counts 8kB pages here, not kB
    "effective_cache_size": ParamSpec("str", pattern=r"[0-9]{1,9}(kB|MB|GB)"),
    "statement_timeout": ParamSpec("str", pattern=_PG_TIME),
    "lock_timeout": ParamSpec("str", pattern=_PG_TIME),
    "idle_in_transaction_session_timeout": ParamSpec("str", pattern=_PG_TIME),
    "random_page_cost": ParamSpec("str", pattern=r"[0-9]{1,6}(\.[0-9]{1,6})?"),
    "enable_seqscan": ParamSpec("str", enum=("on", "off")),
}
# Bounds of the PostgreSQL values in kB (memory; a bare number is kB), ms (time; a bare number
# is ms) or plain numbers. Tighter than the server's own: a typo in a repair must not set
# work_mem to a terabyte.
_DAY_MS = 86_400_000.0
PG_BOUNDS: dict[str, tuple[float, float]] = {
    "work_mem": (64.0, 2 * 1024**2),  # 64kB .. 2GB, per sort/hash node of each query
    "maintenance_work_mem": (1024.0, 8 * 1024**2),  # 1MB .. 8GB
    "effective_cache_size": (1024.0, 1024**3),  # 1MB .. 1TB (a planner hint, no allocation)
    "statement_timeout": (0.0, _DAY_MS),
    "lock_timeout": (0.0, _DAY_MS),
    "idle_in_transaction_session_timeout": (0.0, _DAY_MS),
    "random_page_cost": (0.1, 100.0),
}
_UNIT = {"": 1.0, "kB": 1.0, "MB": 1024.0, "GB": 1024.0**2,
         "us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": _DAY_MS}
_PG_PLAIN = re.compile(r"[A-Za-z0-9._ -]{1,64}")
_DEFINITION = re.compile(r"CREATE (UNIQUE )?INDEX [^;]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SqlDatabase:
    """Where a target's database is: ``sqlite`` (a file path) or ``postgresql`` (a conninfo)."""

    dialect: Literal["sqlite", "postgresql"]
    dsn: str


class SqlExecutor:
    """``sql_explain``, ``create_index``, ``drop_index`` and ``sql_setting`` on a target's DB.

    Args:
        databases: target → its database.
        queries: name → SELECT that ``sql_explain`` may explain (param ``query`` names one).
    """

    actions = frozenset(_SCHEMAS)

    def __init__(
        self, databases: Mapping[str, SqlDatabase], queries: Mapping[str, str] | None = None
    ) -> None:
        for name, query in (queries or {}).items():
            check_select(query)
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", name):
                raise ValueError(f"query name {name!r} is not [a-z][a-z0-9_-]*")
        self._databases = dict(databases)
        self._queries = dict(queries or {})
        self._open: dict[str, Db] = {}

    def dsns(self) -> dict[str, str]:
        """Return ``{target: conninfo or file}`` of the registered databases (for monitoring)."""
        return {target: db.dsn for target, db in self._databases.items()}

    def close(self) -> None:
        """Close every open connection (session settings end with them)."""
        for db in self._open.values():
            db.close()
        self._open.clear()

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return the table's indexes and the index concerned, or the setting's value."""
        values = self._validate(action, target, params)
        with self._errors(action, target):
            db = self._db(action, target)
            values = self._suggested(action, target, db, values)
            if action == "sql_setting":
                return {"setting": values["name"], "value": db.get_setting(str(values["name"]))}
            if action == "sql_explain":
                return {}
            table, index = str(values["table"]), str(values["index"])
            existing = db.indexes(table)
            return {"table": table, "index": index, "existed": index in existing,
                    "definition": existing.get(index, ""), "indexes": json.dumps(sorted(existing))}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Carry out ``action``; database errors become ``ActionError``."""
        values = self._validate(action, target, params)
        with self._errors(action, target):
            db = self._db(action, target)
            values = self._suggested(action, target, db, values)
            if action == "sql_explain":
                return ActionReport(True, db.explain(self._queries[str(values["query"])]))
            if action == "sql_setting":
                db.set_setting(str(values["name"]), values["value"])
                return ActionReport(True, _setting_detail(db, values))
            index, table = str(values["index"]), str(values["table"])
            if action == "create_index":
                db.create_index(index, table, str(values["column"]))
                why = f" (suggested by the plan of {values['query']})" if "query" in values else ""
                return ActionReport(
                    True, f"created index {index} on {table}({values['column']}){why}")
            if not db.indexes(table).get(index):
                raise ActionError(action, target, f"no droppable index {index} on {table}")
            db.drop_index(index)
            return ActionReport(True, f"dropped index {index} on {table}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Drop an index the step created, recreate one it dropped, or put a setting back."""
        if "setting" in state:
            return self._restore_setting(target, state)
        if "index" not in state:
            return ActionReport(True, "nothing to restore")
        table = check_identifier("restore", target, "table", state.get("table", ""))
        index = check_identifier("restore", target, "index", state["index"])
        with self._errors("restore", target):
            db = self._db("restore", target)
            present = index in db.indexes(table)
            if state.get("existed") is True and not present:
                definition = str(state.get("definition", ""))
                if not _DEFINITION.fullmatch(definition):
                    raise ActionError("restore", target, "saved index definition is not usable")
                db.run_definition(definition)
                return ActionReport(True, f"recreated index {index}")
            if state.get("existed") is False and present:
                db.drop_index(index)
                return ActionReport(True, f"dropped index {index}")
        return ActionReport(True, f"index {index} already as before")

    def _validate(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        schema = _SCHEMAS.get(action)
        if schema is None:
            raise ActionError(action, target, f"unknown action; known: {sorted(self.actions)}")
        if action == "sql_setting":
            return self._validate_setting(target, params)
        values = validate(action, target, params, schema)
        if "query" in values and values["query"] not in self._queries:
            raise UnsafeParameter(action, target, f"unknown query {values['query']!r}")
        if action == "sql_explain":
            return values
        # create_index: by ``query`` alone, or by both ``table`` and ``column``
        named = {"table", "column"} & set(values)
        wanted = set() if "query" in values else {"table", "column"}
        if action == "create_index" and named != wanted:
            raise UnsafeParameter(action, target,
                                  "give either 'query' or both 'table' and 'column'")
        for key in ("table", "column", "index"):
            if key in values:
                check_identifier(action, target, key, values[key])
        if "index" not in values and "table" in values:
            values["index"] = _index_name(values)
        return values

    def _suggested(
        self, action: str, target: str, db: Db, values: dict[str, FactValue]
    ) -> dict[str, FactValue]:
        """Fill ``table`` and ``column`` of a ``create_index`` by ``query`` from its plan.

        Raises:
            ActionError: the plan scans no table filtered on one of its columns (nothing to
                index: the query may use an index already).
        """
        if action != "create_index" or "table" in values:
            return values
        query = self._queries[str(values["query"])]
        found = suggest_index(db.conn, query)
        if found is None:
            plan = db.explain(query)
            raise ActionError(action, target, f"the plan of {values['query']} suggests no "
                              f"index (it scans no table on a filtered column): {plan:.200}")
        table, column = found
        out = dict(values, table=check_identifier(action, target, "table", table),
                   column=check_identifier(action, target, "column", column))
        out.setdefault("index", _index_name(out))
        return out

    def _restore_setting(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Put a setting back to its rollback-point value; ``RESET`` it when it was unset.

        A PostgreSQL value read from the catalog goes back as it was, without the bounds of
        a repair (a DBA may have set more); it must still be a short plain literal.
        """
        name, value = state["setting"], state.get("value", "")
        if self._database("restore", target).dialect == "sqlite":
            return self.execute("sql_setting", target, {"name": name, "value": value})
        self._validate_setting(target, {"name": name, "value": value}, check_value=False)
        if not isinstance(value, str) or not _PG_PLAIN.fullmatch(value):
            raise UnsafeParameter("restore", target, f"saved value {value!r:.80} is not plain")
        with self._errors("restore", target):
            db = self._db("restore", target)
            assert isinstance(db, PostgresDb)  # the dialect said so
            if value == UNSET:
                db.reset_setting(str(name))
                return ActionReport(True, f"reset {name} of database {db.database()}")
            db.set_setting(str(name), value)
            return ActionReport(True, f"set {name} of database {db.database()} back to {value}")

    def _validate_setting(
        self, target: str, params: Params, *, check_value: bool = True
    ) -> dict[str, FactValue]:
        allowed = self._allow_list("sql_setting", target)
        name = params.get("name")
        if not isinstance(name, str) or name not in allowed:
            raise UnsafeParameter("sql_setting", target,
                                  f"setting {name!r:.80} is not one of {sorted(allowed)}")
        if set(params) != {"name", "value"}:
            raise UnsafeParameter("sql_setting", target, "give exactly 'name' and 'value'")
        if not check_value:
            return {"name": name}
        checked = validate("sql_setting", target, {"value": params["value"]},
                           {"value": allowed[name]})
        if allowed is PG_SETTINGS:
            _check_pg_bounds(target, name, str(checked["value"]))
        return {"name": name, "value": checked["value"]}

    def _allow_list(self, action: str, target: str) -> dict[str, ParamSpec]:
        return SQLITE_PRAGMAS if self._database(action, target).dialect == "sqlite" \
            else PG_SETTINGS

    def _database(self, action: str, target: str) -> SqlDatabase:
        check_target(action, target)
        database = self._databases.get(target)
        if database is None:
            raise ActionError(action, target, "no database registered for this target")
        return database

    def _db(self, action: str, target: str) -> Db:
        if target not in self._open:
            database = self._database(action, target)
            self._open[target] = (SqliteDb(database.dsn) if database.dialect == "sqlite"
                                  else PostgresDb(database.dsn))
        return self._open[target]

    @staticmethod
    def _errors(action: str, target: str) -> _Translate:
        return _Translate(action, target)


def _index_name(values: Mapping[str, FactValue]) -> str:
    return f"shk_{values['table']}_{values['column']}_idx"[:63]


def _check_pg_bounds(target: str, name: str, value: str) -> None:
    """Refuse a PostgreSQL value outside ``PG_BOUNDS`` (already matched by its pattern)."""
    bounds = PG_BOUNDS.get(name)
    if bounds is None:
        return
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value)
    if match is None or match.group(2) not in _UNIT:
        raise UnsafeParameter("sql_setting", target, f"{name}: unreadable value {value!r:.80}")
    amount = float(match.group(1)) * _UNIT[match.group(2)]
    low, high = bounds
    if not low <= amount <= high:
        unit = "kB" if name.endswith("mem") or name.endswith("size") else \
            "ms" if name.endswith("timeout") else ""
        raise UnsafeParameter("sql_setting", target, f"{name} = {value} is outside "
                              f"[{low:g}{unit}, {high:g}{unit}]")


def _setting_detail(db: Db, values: Mapping[str, FactValue]) -> str:
    """Say what changed and who sees it."""
    if isinstance(db, PostgresDb):
        return (f"set {values['name']} = {values['value']} on database {db.database()}"
                " (ALTER DATABASE: new sessions see it; open sessions keep their value)")
    return f"set PRAGMA {values['name']} = {values['value']} (the executor's own connection only)"


class _Translate:
    """Turn driver errors into ``ActionError`` (a context manager)."""

    def __init__(self, action: str, target: str) -> None:
        self.action, self.target = action, target

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if isinstance(exc, sqlite3.Error | psycopg.Error | ValueError) and \
                not isinstance(exc, ActionError):
            raise ActionError(self.action, self.target, f"{type(exc).__name__}: {exc}") from exc
