"""The executors file: one YAML file declaring every target selfheal may act on, and how.

YAML → JSON Schema check (``executors.schema.json`` beside this module, draft 2020-12,
https://json-schema.org/draft/2020-12) → typed specs → executor instances. Every refusal is
a ``SchemaError`` naming the file, the YAML line when known and the JSON path. The format is
described in docs/executors-file.md; examples/executors.yaml shows every section.

``${VAR}`` environment references are resolved at load, and only in the places that hold
secrets (``sql.databases.*.dsn`` and ``http.*.headers.*``): anywhere else a value would be
read differently by the operator and by selfheal, so ``${`` is refused there.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.executor_builders import BUILDERS, BuildContext
from selfheal_kg.act.yaml_doc import (
    MAX_FILE_BYTES,
    Invalid,
    JsonPath,
    json_path,
    line_of,
    read_yaml,
)
from selfheal_kg.clock import Clock
from selfheal_kg.errors import ActionError, SchemaError

__all__ = ["MAX_FILE_BYTES", "SCHEMA_PATH", "load_executors"]

SCHEMA_PATH = Path(__file__).with_name("executors.schema.json")


def load_executors(path: Path, clock: Clock, *, environ: Mapping[str, str] | None = None,
                   log_dir: Path | None = None) -> list[Executor]:
    """Read, check and build every executor the file at ``path`` declares.

    Args:
        path: the executors file (YAML).
        clock: the clock of the process supervisor.
        environ: where ``${VAR}`` references are looked up (default ``os.environ``).
        log_dir: where supervised processes write their logs (default a temporary directory).

    Returns:
        One executor per section present, in the schema's section order; pass them to
        ``registry.by_action``. HTTP and SQL executors hold connections: ``close()`` them.

    Raises:
        SchemaError: unreadable file, YAML syntax, schema violation, unset variable,
            a value an executor refuses, or an action declared twice.
    """
    node, doc = read_yaml(path)
    ctx = BuildContext(path.parent, clock, os.environ if environ is None else environ, log_dir)
    built: list[tuple[str, Executor]] = []
    try:
        _check_schema(doc)
        _check_values(doc, ())
        built.extend((s, _build(s, doc[s], ctx)) for s in BUILDERS if s in doc)
        _check_duplicates(built)
    except Invalid as exc:
        for _, executor in built:
            _close(executor)
        line = exc.line or line_of(node, exc.path, exc.key)
        raise SchemaError(str(path), f"{json_path(exc.path)}: {exc.reason}", line=line) from None
    return [executor for _, executor in built]


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# -- checks on the whole document -----------------------------------------------------------


def _check_schema(doc: dict[str, Any]) -> None:
    error = best_match(_validator().iter_errors(doc))
    if error is not None:
        raise _schema_invalid(error)


def _schema_invalid(error: ValidationError) -> Invalid:
    path: JsonPath = tuple(error.absolute_path)
    if "propertyNames" in error.relative_schema_path:
        # The path stops at the mapping; the offending name is the instance.
        return Invalid(path, f"name {error.instance!r}: {error.message}", key=str(error.instance))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(str(k) for k in error.instance if k not in known)
        if extra:
            return Invalid(path, f"unknown key {extra[0]!r}; accepted: {sorted(known)}",
                            key=extra[0])
    return Invalid(path, error.message)


def _is_secret(path: JsonPath) -> bool:
    """Return whether ``path`` holds a secret, where ``${VAR}`` references are allowed."""
    return (len(path) == 4 and path[0] == "sql" and path[1] == "databases" and path[3] == "dsn") \
        or (len(path) == 4 and path[0] == "http" and path[2] == "headers")


def _check_values(value: object, path: JsonPath) -> None:
    """Refuse non-finite numbers, and ``${`` outside the places that hold secrets."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_values(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(v, (*path, i))
    elif isinstance(value, float) and not math.isfinite(value):
        raise Invalid(path, f"{value} is not a finite number")
    elif isinstance(value, str) and "${" in value and not _is_secret(path):
        raise Invalid(path, "${...} environment references are allowed only in "
                             "sql.databases.*.dsn and http.*.headers.* values")


def _check_duplicates(built: list[tuple[str, Executor]]) -> None:
    """Refuse an action declared by two executors, naming both declarations."""
    seen: dict[str, str] = {}
    for section, executor in built:
        named = section in ("commands", "http")
        for action in sorted(executor.actions):
            where: JsonPath = (section, action) if named else (section,)
            # A section with fixed actions is named with them: the clash may not be obvious.
            label = json_path(where) + ("" if named else
                                         f" (which offers {', '.join(sorted(executor.actions))})")
            if action in seen:
                raise Invalid(where, f"action {action!r} is declared twice: by {seen[action]} "
                                      f"and by {label}")
            seen[action] = label


def _build(section: str, raw: Any, ctx: BuildContext) -> Executor:
    """Build one section's executor; a value its constructor refuses names the section."""
    try:
        return BUILDERS[section](raw, ctx)
    except (ValueError, ActionError) as exc:
        raise Invalid((section,), str(exc)) from None


def _close(executor: Executor) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        close()
