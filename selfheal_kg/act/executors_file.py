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
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from selfheal_kg.act.command import CommandExecutor, CommandSpec
from selfheal_kg.act.config_file import ConfigFileExecutor
from selfheal_kg.act.executor import Executor
from selfheal_kg.act.http import AdminApiExecutor, HttpEndpoint, HttpExecutor
from selfheal_kg.act.kubectl import KubectlExecutor
from selfheal_kg.act.params import ParamSpec, validate
from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.act.sql import SqlDatabase, SqlExecutor, check_select
from selfheal_kg.act.systemd import SystemdExecutor
from selfheal_kg.clock import Clock
from selfheal_kg.errors import ActionError, SchemaError, UnsafeParameter

SCHEMA_PATH = Path(__file__).with_name("executors.schema.json")
MAX_FILE_BYTES = 1_000_000
_MAX_NODES = 100_000  # aliases can expand a small file into a huge tree
_MAX_DEPTH = 32
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

JsonPath = tuple[str | int, ...]


class _Invalid(Exception):
    """A problem at a JSON path; ``load_executors`` turns it into a ``SchemaError``."""

    def __init__(self, path: JsonPath, reason: str, *, key: str | None = None,
                 line: int | None = None) -> None:
        super().__init__(reason)
        self.path, self.reason, self.key, self.line = path, reason, key, line


@dataclass(frozen=True, slots=True)
class _Context:
    """What the section builders need besides their section."""

    base: Path
    clock: Clock
    environ: Mapping[str, str]
    log_dir: Path | None


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
    node, doc = _read(path)
    ctx = _Context(path.parent, clock, os.environ if environ is None else environ, log_dir)
    built: list[tuple[str, Executor]] = []
    try:
        _check_schema(doc)
        _check_values(doc, ())
        built.extend((s, _build(s, doc[s], ctx)) for s in _BUILDERS if s in doc)
        _check_duplicates(built)
    except _Invalid as exc:
        for _, executor in built:
            _close(executor)
        line = exc.line or _line(node, exc.path, exc.key)
        raise SchemaError(str(path), f"{_json_path(exc.path)}: {exc.reason}", line=line) from None
    return [executor for _, executor in built]


# -- reading: YAML with its line marks ------------------------------------------------------


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _read(path: Path) -> tuple[yaml.Node, dict[str, Any]]:
    """Return the composed YAML tree (for line numbers) and the document it constructs."""
    file = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SchemaError(file, f"file larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(file, f"cannot read: {exc}") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SchemaError(file, "the file is empty; declare at least one section")
        try:
            _check_nodes(node, (), 0, [0])
        except _Invalid as exc:
            raise SchemaError(file, f"{_json_path(exc.path)}: {exc.reason}",
                              line=exc.line or _line(node, exc.path)) from None
        doc = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SchemaError(file, f"YAML syntax error: {exc.problem or exc}", line=line) from exc
    except yaml.YAMLError as exc:
        raise SchemaError(file, f"YAML error: {exc}") from exc
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        raise SchemaError(file, f"$: expected a mapping of sections, got {type(doc).__name__}",
                          line=node.start_mark.line + 1)
    return node, doc


def _check_nodes(node: yaml.Node, path: JsonPath, depth: int, count: list[int]) -> None:
    """Refuse duplicate keys, keys that are not strings, and alias bombs or cycles."""
    count[0] += 1
    if depth > _MAX_DEPTH or count[0] > _MAX_NODES:
        raise _Invalid(path, "nested too deep or too large (recursive or repeated YAML aliases?)")
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_nodes(item, (*path, i), depth + 1, count)
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                raise _Invalid(path, f"key {getattr(key, 'value', key)!r} is not read as a "
                                     f"string by YAML (tag {key.tag}); quote it", line=line)
            if key.value in seen:
                raise _Invalid(path, f"key {key.value!r} appears twice", line=line)
            seen.add(key.value)
            _check_nodes(value, (*path, key.value), depth + 1, count)


def _line(node: yaml.Node, path: JsonPath, key: str | None = None) -> int:
    """Return the 1-based line of ``path`` (of its ``key``, if given) in the YAML tree.

    A mapping entry is reported at its key's line, where a reader looks for it.
    """
    mark = node.start_mark
    for part in [*path, key] if key is not None else path:
        found = _child(node, part)
        if found is None:
            break
        node, mark = found
    return int(mark.line) + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Mark] | None:
    """Return the child at ``part`` and the mark to report it at."""
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item, item.start_mark
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == part:
                return v, k.start_mark
    return None


def _json_path(path: JsonPath) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


# -- checks on the whole document -----------------------------------------------------------


def _check_schema(doc: dict[str, Any]) -> None:
    error = best_match(_validator().iter_errors(doc))
    if error is not None:
        raise _schema_invalid(error)


def _schema_invalid(error: ValidationError) -> _Invalid:
    path: JsonPath = tuple(error.absolute_path)
    if "propertyNames" in error.relative_schema_path:
        # The path stops at the mapping; the offending name is the instance.
        return _Invalid(path, f"name {error.instance!r}: {error.message}", key=str(error.instance))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(str(k) for k in error.instance if k not in known)
        if extra:
            return _Invalid(path, f"unknown key {extra[0]!r}; accepted: {sorted(known)}",
                            key=extra[0])
    return _Invalid(path, error.message)


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
        raise _Invalid(path, f"{value} is not a finite number")
    elif isinstance(value, str) and "${" in value and not _is_secret(path):
        raise _Invalid(path, "${...} environment references are allowed only in "
                             "sql.databases.*.dsn and http.*.headers.* values")


def _check_duplicates(built: list[tuple[str, Executor]]) -> None:
    """Refuse an action declared by two executors, naming both declarations."""
    seen: dict[str, str] = {}
    for section, executor in built:
        named = section in ("commands", "http")
        for action in sorted(executor.actions):
            where: JsonPath = (section, action) if named else (section,)
            # A section with fixed actions is named with them: the clash may not be obvious.
            label = _json_path(where) + ("" if named else
                                         f" (which offers {', '.join(sorted(executor.actions))})")
            if action in seen:
                raise _Invalid(where, f"action {action!r} is declared twice: by {seen[action]} "
                                      f"and by {label}")
            seen[action] = label


def _build(section: str, raw: Any, ctx: _Context) -> Executor:
    """Build one section's executor; a value its constructor refuses names the section."""
    try:
        return _BUILDERS[section](raw, ctx)
    except (ValueError, ActionError) as exc:
        raise _Invalid((section,), str(exc)) from None


def _close(executor: Executor) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        close()


# -- values: environment references and paths -----------------------------------------------


def _resolve(text: str, path: JsonPath, environ: Mapping[str, str]) -> str:
    """Replace each ``${VAR}`` by its value; refuse unset variables and stray ``${``."""
    if "${" in _ENV_REF.sub("", text):
        raise _Invalid(path, "malformed environment reference; write ${NAME} with NAME "
                             "[A-Za-z_][A-Za-z0-9_]*")
    for name in _ENV_REF.findall(text):
        if name not in environ:
            raise _Invalid(path, f"environment variable {name} is not set")
    return _ENV_REF.sub(lambda m: environ[m.group(1)], text)


def _file(base: Path, raw: str) -> Path:
    """Return ``raw`` as a path, relative ones taken from the executors file's directory."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


# -- section builders -----------------------------------------------------------------------


def _processes(raw: list[dict[str, Any]], ctx: _Context) -> Executor:
    supervisor = ProcessSupervisor(ctx.clock, ctx.log_dir)
    for i, item in enumerate(raw):
        try:
            spec = ProcessSpec(
                name=item["name"], argv=tuple(item["argv"]), env=dict(item.get("env", {})),
                cwd=_file(ctx.base, item["cwd"]) if "cwd" in item else None,
                health_url=item.get("health_url"),
            )
            supervisor.add(spec)
        except ValueError as exc:
            raise _Invalid(("processes", i), str(exc)) from None
    return supervisor


def _params(raw: Mapping[str, Any], path: JsonPath) -> dict[str, ParamSpec]:
    return {name: _param(name, p, (*path, name)) for name, p in raw.items()}


def _param(name: str, raw: Mapping[str, Any], path: JsonPath) -> ParamSpec:
    kind = raw["kind"]
    numeric, text = kind in ("int", "float"), kind == "str"
    for key, allowed in (("minimum", numeric), ("maximum", numeric), ("pattern", text),
                         ("max_length", text)):
        if key in raw and not allowed:
            raise _Invalid((*path, key), f"{key} does not apply to kind {kind}")
    if numeric and raw.get("minimum", -math.inf) > raw.get("maximum", math.inf):
        raise _Invalid(path, "minimum is greater than maximum")
    if "pattern" in raw:
        try:
            re.compile(raw["pattern"])
        except re.error as exc:
            raise _Invalid((*path, "pattern"), f"not a valid regex: {exc}") from None
    spec = ParamSpec(kind, required=bool(raw.get("required", False)),
                     minimum=raw.get("minimum"), maximum=raw.get("maximum"),
                     pattern=raw.get("pattern"), max_length=raw.get("max_length", 256))
    enum = tuple(_fits(name, v, spec, (*path, "enum", i)) for i, v in enumerate(raw["enum"])) \
        if "enum" in raw else None
    spec = replace(spec, enum=enum)
    if "default" in raw:
        spec = replace(spec, default=_fits(name, raw["default"], spec, (*path, "default")))
    return spec


def _fits(name: str, value: Any, spec: ParamSpec, path: JsonPath) -> Any:
    """Return ``value`` checked by the parameter's own spec (as a step's value would be)."""
    try:
        return validate("load", "config", {name: value}, {name: spec})[name]
    except UnsafeParameter as exc:
        hint = " (YAML reads yes/no/on/off as booleans: quote them)" \
            if isinstance(value, bool) else ""
        raise _Invalid(path, exc.reason + hint) from None


def _commands(raw: Mapping[str, Any], ctx: _Context) -> Executor:
    specs = {}
    for name, item in raw.items():
        path: JsonPath = ("commands", name)
        params = _params(item.get("params", {}), (*path, "params"))
        try:
            specs[name] = CommandSpec(
                argv=tuple(item["argv"]), params=params, timeout=float(item.get("timeout", 30)),
                undo=tuple(item["undo"]) if "undo" in item else None,
                env=dict(item.get("env", {})),
            )
        except ValueError as exc:
            raise _Invalid(path, str(exc)) from None
    return CommandExecutor(specs)


def _http(raw: Mapping[str, Any], ctx: _Context) -> Executor:
    endpoints = {}
    for name, item in raw.items():
        path: JsonPath = ("http", name)
        if "undo" in item and item["undo"] not in raw:
            raise _Invalid((*path, "undo"), f"undo {item['undo']!r} is not an endpoint of http")
        endpoints[name] = HttpEndpoint(
            url=item["url"], method=item.get("method", "POST"),
            params=_params(item.get("params", {}), (*path, "params")),
            headers=_headers(item.get("headers", {}), (*path, "headers"), ctx.environ),
            undo=item.get("undo"),
        )
    return HttpExecutor(endpoints)


def _headers(raw: Mapping[str, str], path: JsonPath, environ: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in raw.items():
        resolved = _resolve(value, (*path, key), environ)
        if _CONTROL.search(resolved):
            # The value may be a secret: say where it came from, never what it is.
            raise _Invalid((*path, key), "value contains a control character after "
                                         "environment substitution")
        out[key] = resolved
    return out


def _admin(raw: Mapping[str, str], ctx: _Context) -> Executor:
    return AdminApiExecutor(dict(raw))


def _config_files(raw: Mapping[str, Any], ctx: _Context) -> Executor:
    files = {target: _file(ctx.base, p) for target, p in raw["files"].items()}
    allowed = raw.get("allowed_keys", {})
    for target in allowed:
        if target not in files:
            raise _Invalid(("config_files", "allowed_keys"),
                           f"target {target!r} has no file in config_files.files", key=target)
    return ConfigFileExecutor(files, raw.get("keep_versions", 5), allowed)


def _sql(raw: Mapping[str, Any], ctx: _Context) -> Executor:
    databases = {}
    for target, item in raw["databases"].items():
        dsn = _resolve(item["dsn"], ("sql", "databases", target, "dsn"), ctx.environ)
        if item["dialect"] == "sqlite" and dsn != ":memory:" and not dsn.startswith("file:"):
            dsn = str(_file(ctx.base, dsn))
        databases[target] = SqlDatabase(item["dialect"], dsn)
    queries = raw.get("queries", {})
    for name, query in queries.items():
        try:
            check_select(query)
        except ValueError as exc:
            raise _Invalid(("sql", "queries", name), str(exc)) from None
    return SqlExecutor(databases, queries)


def _systemd(raw: Mapping[str, Any], ctx: _Context) -> Executor:
    return SystemdExecutor(dict(raw["units"]), systemctl=raw.get("systemctl", "systemctl"))


def _kubectl(raw: Mapping[str, Any], ctx: _Context) -> Executor:
    return KubectlExecutor(
        dict(raw["deployments"]), namespace=raw.get("namespace", "default"),
        kubectl=raw.get("kubectl", "kubectl"), max_replicas=raw.get("max_replicas", 50),
    )


_BUILDERS: dict[str, Callable[[Any, _Context], Executor]] = {
    "processes": _processes,
    "commands": _commands,
    "http": _http,
    "admin": _admin,
    "config_files": _config_files,
    "sql": _sql,
    "systemd": _systemd,
    "kubectl": _kubectl,
}
"""Section → builder, in the order executors are returned (the schema's top-level keys)."""
