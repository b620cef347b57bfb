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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import psycopg
from psycopg import sql

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import ParamSpec, Schema, check_identifier, check_target, validate
from selfheal_kg.errors import ActionError, UnsafeParameter
from selfheal_kg.model import FactValue

_IDENT = ParamSpec("str", required=True, max_length=63)
_SCHEMAS: dict[str, Schema] = {
    "sql_explain": {"query": ParamSpec("str", required=True, max_length=64)},
    "create_index": {"table": _IDENT, "column": _IDENT, "index": ParamSpec("str")},
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
UNSET = "unset"
"""Rollback-point value of a PostgreSQL setting the database did not set (restore: RESET)."""
_DEFINITION = re.compile(r"CREATE (UNIQUE )?INDEX [^;]+", re.IGNORECASE)
_WHERE_COLUMN = re.compile(
    r"(?:\b[A-Za-z_]\w*\.)?\b([A-Za-z_]\w*)\s*(?:=|<>|!=|<=|>=|<|>|\bIN\b|\bLIKE\b|\bBETWEEN\b)",
    re.IGNORECASE,
)
_PG_FILTER_COLUMN = re.compile(r"\(*([A-Za-z_]\w*)\)*(?:::[\w ]+)?\s*(?:=|<>|<=|>=|<|>|~~)")


@dataclass(frozen=True, slots=True)
class SqlDatabase:
    """Where a target's database is: ``sqlite`` (a file path) or ``postgresql`` (a conninfo)."""

    dialect: Literal["sqlite", "postgresql"]
    dsn: str


class _Db(Protocol):
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


class _Sqlite:
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
        self.conn.execute(f"CREATE INDEX {_q(index)} ON {_q(table)} ({_q(column)})")

    def drop_index(self, index: str) -> None:
        self.conn.execute(f"DROP INDEX {_q(index)}")

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


def _q(identifier: str) -> str:
    """Quote an SQLite identifier (double quotes, inner quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


class _Postgres:
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
        self._open: dict[str, _Db] = {}

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
            if action == "sql_explain":
                return ActionReport(True, db.explain(self._queries[str(values["query"])]))
            if action == "sql_setting":
                db.set_setting(str(values["name"]), values["value"])
                return ActionReport(True, _setting_detail(db, values))
            index, table = str(values["index"]), str(values["table"])
            if action == "create_index":
                db.create_index(index, table, str(values["column"]))
                return ActionReport(True, f"created index {index} on {table}({values['column']})")
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
        if action == "sql_explain":
            if values["query"] not in self._queries:
                raise UnsafeParameter(action, target, f"unknown query {values['query']!r}")
            return values
        for key in ("table", "column", "index"):
            if key in values:
                check_identifier(action, target, key, values[key])
        if "index" not in values:
            values["index"] = f"shk_{values['table']}_{values['column']}_idx"[:63]
        return values

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
            assert isinstance(db, _Postgres)  # the dialect said so
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

    def _db(self, action: str, target: str) -> _Db:
        if target not in self._open:
            database = self._database(action, target)
            self._open[target] = (_Sqlite(database.dsn) if database.dialect == "sqlite"
                                  else _Postgres(database.dsn))
        return self._open[target]

    @staticmethod
    def _errors(action: str, target: str) -> _Translate:
        return _Translate(action, target)


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


def _setting_detail(db: _Db, values: Mapping[str, FactValue]) -> str:
    """Say what changed and who sees it."""
    if isinstance(db, _Postgres):
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
        columns = {str(r[1]) for r in conn.execute(f"PRAGMA table_info({_q(table)})")}
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
