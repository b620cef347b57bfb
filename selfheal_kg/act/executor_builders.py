"""Build executors from the checked sections of the executors file, one builder per section.

``BUILDERS`` is the registry, in the order executors are returned (the schema's top-level
keys). A value a builder refuses raises ``Invalid`` at its JSON path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from selfheal_kg.act.command import CommandExecutor, CommandSpec
from selfheal_kg.act.config_file import ConfigFileExecutor
from selfheal_kg.act.executor import Executor
from selfheal_kg.act.http import AdminApiExecutor, HttpEndpoint, HttpExecutor
from selfheal_kg.act.kubectl import KubectlExecutor
from selfheal_kg.act.params import ParamSpec, validate
from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.act.sql import SqlDatabase, SqlExecutor
from selfheal_kg.act.sql_db import check_select
from selfheal_kg.act.systemd import SystemdExecutor
from selfheal_kg.act.yaml_doc import Invalid, JsonPath
from selfheal_kg.clock import Clock
from selfheal_kg.errors import UnsafeParameter

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What the section builders need besides their section."""

    base: Path
    clock: Clock
    environ: Mapping[str, str]
    log_dir: Path | None


# -- values: environment references and paths -----------------------------------------------


def resolve_env(text: str, path: JsonPath, environ: Mapping[str, str]) -> str:
    """Replace each ``${VAR}`` by its value; refuse unset variables and stray ``${``."""
    if "${" in _ENV_REF.sub("", text):
        raise Invalid(path, "malformed environment reference; write ${NAME} with NAME "
                             "[A-Za-z_][A-Za-z0-9_]*")
    for name in _ENV_REF.findall(text):
        if name not in environ:
            raise Invalid(path, f"environment variable {name} is not set")
    return _ENV_REF.sub(lambda m: environ[m.group(1)], text)


def _file(base: Path, raw: str) -> Path:
    """Return ``raw`` as a path, relative ones taken from the executors file's directory."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


# -- section builders -----------------------------------------------------------------------


def _processes(raw: list[dict[str, Any]], ctx: BuildContext) -> Executor:
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
            raise Invalid(("processes", i), str(exc)) from None
    return supervisor


def _params(raw: Mapping[str, Any], path: JsonPath) -> dict[str, ParamSpec]:
    return {name: _param(name, p, (*path, name)) for name, p in raw.items()}


def _param(name: str, raw: Mapping[str, Any], path: JsonPath) -> ParamSpec:
    kind = raw["kind"]
    numeric, text = kind in ("int", "float"), kind == "str"
    for key, allowed in (("minimum", numeric), ("maximum", numeric), ("pattern", text),
                         ("max_length", text)):
        if key in raw and not allowed:
            raise Invalid((*path, key), f"{key} does not apply to kind {kind}")
    if numeric and raw.get("minimum", -math.inf) > raw.get("maximum", math.inf):
        raise Invalid(path, "minimum is greater than maximum")
    if "pattern" in raw:
        try:
            re.compile(raw["pattern"])
        except re.error as exc:
            raise Invalid((*path, "pattern"), f"not a valid regex: {exc}") from None
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
        raise Invalid(path, exc.reason + hint) from None


def _commands(raw: Mapping[str, Any], ctx: BuildContext) -> Executor:
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
            raise Invalid(path, str(exc)) from None
    return CommandExecutor(specs)


def _http(raw: Mapping[str, Any], ctx: BuildContext) -> Executor:
    endpoints = {}
    for name, item in raw.items():
        path: JsonPath = ("http", name)
        if "undo" in item and item["undo"] not in raw:
            raise Invalid((*path, "undo"), f"undo {item['undo']!r} is not an endpoint of http")
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
        resolved = resolve_env(value, (*path, key), environ)
        if _CONTROL.search(resolved):
            # The value may be a secret: say where it came from, never what it is.
            raise Invalid((*path, key), "value contains a control character after "
                                         "environment substitution")
        out[key] = resolved
    return out


def _admin(raw: Mapping[str, str], ctx: BuildContext) -> Executor:
    return AdminApiExecutor(dict(raw))


def _config_files(raw: Mapping[str, Any], ctx: BuildContext) -> Executor:
    files = {target: _file(ctx.base, p) for target, p in raw["files"].items()}
    allowed = raw.get("allowed_keys", {})
    for target in allowed:
        if target not in files:
            raise Invalid(("config_files", "allowed_keys"),
                           f"target {target!r} has no file in config_files.files", key=target)
    return ConfigFileExecutor(files, raw.get("keep_versions", 5), allowed)


def _sql(raw: Mapping[str, Any], ctx: BuildContext) -> Executor:
    databases = {}
    for target, item in raw["databases"].items():
        dsn = resolve_env(item["dsn"], ("sql", "databases", target, "dsn"), ctx.environ)
        if item["dialect"] == "sqlite" and dsn != ":memory:" and not dsn.startswith("file:"):
            dsn = str(_file(ctx.base, dsn))
        databases[target] = SqlDatabase(item["dialect"], dsn)
    queries = raw.get("queries", {})
    for name, query in queries.items():
        try:
            check_select(query)
        except ValueError as exc:
            raise Invalid(("sql", "queries", name), str(exc)) from None
    return SqlExecutor(databases, queries)


def _systemd(raw: Mapping[str, Any], ctx: BuildContext) -> Executor:
    return SystemdExecutor(dict(raw["units"]), systemctl=raw.get("systemctl", "systemctl"))


def _kubectl(raw: Mapping[str, Any], ctx: BuildContext) -> Executor:
    return KubectlExecutor(
        dict(raw["deployments"]), namespace=raw.get("namespace", "default"),
        kubectl=raw.get("kubectl", "kubectl"), max_replicas=raw.get("max_replicas", 50),
    )


BUILDERS: dict[str, Callable[[Any, BuildContext], Executor]] = {
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
