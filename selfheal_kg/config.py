"""One typed configuration object, built once and injected where needed.

Values come from defaults, then ``SELFHEAL_*`` environment variables, then explicit keyword
overrides (the CLI's flags).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from selfheal_kg.errors import ConfigError
from selfheal_kg.paths import shipped


def _default_dir(name: str) -> Path:
    return shipped(name)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything selfheal-kg can be configured with.

    Attributes:
        host, port: where ``selfheal serve`` listens (OTLP/HTTP default port 4318).
        store_path: directory of the on-disk Oxigraph store; ``None`` keeps it in memory.
        ontology_dir, rules_dir, playbooks_dir: the user-authored files.
        topology_files: declared topology in Turtle.
        tick_seconds: how often the pipeline runs detection, rules and healing.
        stale_after_seconds: a service that sent nothing for this long is considered down.
        max_points_per_series: bound of each series' history.
        max_body_bytes: OTLP body cap after decompression.
        api_token: bearer token for mutating endpoints (``None``: only loopback callers).
        dry_run: record what healing would do, execute nothing.
        record_path: write received telemetry as OTLP JSON lines here, when set.
        processes_file: YAML list of local processes the supervisor may restart.
        executors_file: YAML declaring every target selfheal may act on, and how
            (docs/executors-file.md); the processes in ``processes_file`` are added to it.
        notify_url: webhook that receives alert-group notifications and pages (escalations to
            a human), as JSON; ``None`` sends nothing.
        group_wait_seconds: how long a new incident gathers symptoms before RCA and decision.
        trend_horizon_seconds: a resource (``*.utilization``) predicted to be exhausted within
            this many seconds raises a ``trend`` signal at full score.
    """

    host: str = "127.0.0.1"
    port: int = 4318
    store_path: Path | None = None
    ontology_dir: Path = field(default_factory=lambda: _default_dir("ontology"))
    rules_dir: Path = field(default_factory=lambda: _default_dir("rules"))
    playbooks_dir: Path = field(default_factory=lambda: _default_dir("playbooks"))
    topology_files: tuple[Path, ...] = ()
    tick_seconds: float = 1.0
    stale_after_seconds: float = 3.5
    max_points_per_series: int = 720
    max_body_bytes: int = 64 * 1024 * 1024
    api_token: str | None = None
    dry_run: bool = False
    record_path: Path | None = None
    processes_file: Path | None = None
    executors_file: Path | None = None
    notify_url: str | None = None
    group_wait_seconds: float = 2.0
    trend_horizon_seconds: float = 3600.0

    def with_overrides(self, **overrides: Any) -> Config:
        """Return a copy with the given non-``None`` fields replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build the configuration from ``SELFHEAL_*`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get("SELFHEAL_" + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _parse(f.name, str(f.type), raw)
        return cls(**values).with_overrides(**overrides)


def _parse(name: str, type_text: str, raw: str) -> Any:
    try:
        if type_text.startswith("int"):
            return int(raw)
        if type_text.startswith("float"):
            return float(raw)
        if type_text.startswith("bool"):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes"}
        if type_text.startswith("tuple"):
            return tuple(Path(p) for p in raw.split(os.pathsep) if p)
        if "Path" in type_text:
            return Path(raw)
    except ValueError as exc:
        raise ConfigError(f"SELFHEAL_{name.upper()}={raw!r}: {exc}") from exc
    return raw
