"""The explicit registry of executors: action name → the adapter that carries it out."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.clock import SystemClock
from selfheal_kg.config import Config
from selfheal_kg.errors import SchemaError


def by_action(executors: Iterable[Executor]) -> dict[str, Executor]:
    """Index executors by each action they carry out; an action claimed twice is refused."""
    out: dict[str, Executor] = {}
    for ex in executors:
        for action in ex.actions:
            if action in out:
                raise ValueError(f"action {action!r} claimed by two executors")
            out[action] = ex
    return out


def load_process_specs(path: Path) -> list[ProcessSpec]:
    """Read a YAML list of ``{name, argv, env?, cwd?, health_url?}`` process specs."""
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SchemaError(str(path), f"YAML syntax: {exc}", line=line) from exc
    if not isinstance(doc, list):
        raise SchemaError(str(path), "expected a list of processes")
    specs = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict) or not isinstance(item.get("argv"), list):
            raise SchemaError(str(path), f"item {i}: needs 'name' and an 'argv' list")
        try:
            specs.append(
                ProcessSpec(
                    name=str(item.get("name")),
                    argv=tuple(str(a) for a in item["argv"]),
                    env={str(k): str(v) for k, v in (item.get("env") or {}).items()},
                    cwd=Path(item["cwd"]) if item.get("cwd") else None,
                    health_url=item.get("health_url"),
                )
            )
        except ValueError as exc:
            raise SchemaError(str(path), f"item {i}: {exc}") from exc
    return specs


def build_executors(config: Config) -> dict[str, Executor]:
    """Build the executors ``selfheal serve`` offers from the configuration."""
    from selfheal_kg.act.executors_file import load_executors

    executors: list[Executor] = []
    if config.executors_file is not None:
        executors += load_executors(config.executors_file, SystemClock())
    if config.processes_file is not None:
        supervisor = ProcessSupervisor(SystemClock())
        for spec in load_process_specs(config.processes_file):
            supervisor.add(spec)
        executors.append(supervisor)
    return by_action(executors)
