"""Start and stop the demo shop: one OS process per service, under a ProcessSupervisor.

The shop is declared in ``demo/shop/shop.json`` (services and their downstream calls); its
topology, without ports, in ``demo/topology.ttl``. Each service runs
``python demo/shop/service.py`` on a free loopback port, exports OTLP/HTTP to the given
endpoint, and reads its JSON configuration file ``<workdir>/config/<name>.json`` (re-read
when it changes; a configuration push and its rollback go through that file).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.clock import Clock, SystemClock
from selfheal_kg.demo.load import DIURNAL_PERIOD, LoadGenerator, LoadPattern, LoadStats
from selfheal_kg.demo.replicas import ReplicaSet
from selfheal_kg.errors import ActionError, FileLoadError
from selfheal_kg.paths import shipped

_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_CRITICALITY = frozenset({"low", "medium", "high", "critical"})
# Every service starts from this known-good configuration (see demo/shop/settings.py).
GOOD_CONFIG = {"currency": "EUR", "tax_rate": 0.2, "pool_size": 8}
# Replicas a scaled-out service may reach (declared ones plus scale-out).
MAX_REPLICAS = 6


@dataclass(frozen=True, slots=True)
class ServiceDecl:
    """One declared service: its downstream services and, optionally, its database.

    ``replicas`` > 1 puts a load balancer (``demo/shop/lb.py``) in front of that many
    instances; ``slots`` > 0 bounds each instance's concurrent work of ``service_ms`` ms.
    """

    name: str
    calls: tuple[str, ...]
    database: str | None
    criticality: str
    replicas: int = 1
    slots: int = 0
    service_ms: float = 20.0


@dataclass(frozen=True, slots=True)
class ShopDecl:
    """The shop's declaration: the services, and which one takes the user traffic."""

    namespace: str
    environment: str
    entry: str
    services: tuple[ServiceDecl, ...]

    def service(self, name: str) -> ServiceDecl:
        """Return the declared service ``name``; raise ``KeyError`` when unknown."""
        for decl in self.services:
            if decl.name == name:
                return decl
        raise KeyError(name)


def load_declaration(path: Path) -> ShopDecl:
    """Read and check ``shop.json``; raise ``FileLoadError`` naming what is wrong."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        decl = _parse_declaration(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileLoadError(str(path), f"invalid shop declaration: {exc}") from exc
    names = [s.name for s in decl.services]
    if len(set(names)) != len(names):
        raise FileLoadError(str(path), "service names are not unique")
    for service in decl.services:
        unknown = set(service.calls) - set(names)
        if unknown:
            raise FileLoadError(str(path), f"calls unknown {sorted(unknown)}", item=service.name)
    if decl.entry not in names:
        raise FileLoadError(str(path), f"entry {decl.entry!r} is not a declared service")
    return decl


def _parse_declaration(raw: Any) -> ShopDecl:
    services = tuple(_parse_service(item) for item in raw["services"])
    return ShopDecl(str(raw["namespace"]), str(raw["environment"]), str(raw["entry"]), services)


def _parse_service(item: Any) -> ServiceDecl:
    name = item["name"]
    calls = tuple(item.get("calls", ()))
    database = item.get("database")
    criticality = item.get("criticality", "medium")
    for value in (name, *calls, *([database] if database is not None else [])):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise ValueError(f"name {value!r} must match {_NAME.pattern}")
    if criticality not in _CRITICALITY:
        raise ValueError(f"{name}: criticality {criticality!r} not in {sorted(_CRITICALITY)}")
    replicas = _bounded(item, "replicas", 1, 1, MAX_REPLICAS)
    slots = _bounded(item, "slots", 0, 0, 256)
    service_ms = _bounded(item, "service_ms", 20, 1, 10_000)
    return ServiceDecl(name, calls, database, criticality, replicas, slots, float(service_ms))


def _bounded(item: Any, key: str, default: int, low: int, high: int) -> int:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{item.get('name')}: {key} must be an integer in [{low}, {high}]")
    return value


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Shop:
    """The demo shop as real OS processes; a context manager that always cleans up.

    Args:
        otlp_endpoint: base URL of an OTLP/HTTP receiver, e.g. ``http://127.0.0.1:4318``.
        workdir: where the database file and the process logs go.
        export_interval: seconds between metric exports of every service.
        python: the interpreter that runs ``service.py`` (needs the OpenTelemetry SDK).
        clock: stamps process start times; the wall clock by default.
        health_timeout: seconds to wait for every ``/health`` on ``start()``.
        db_dsn: a PostgreSQL conninfo for the services' databases (default: SQLite files).
        load_pattern: the users' load, ``"steady"`` or ``"diurnal"`` (see ``LoadPattern``),
            a default for ``start_load``.
        load_period: seconds of one diurnal cycle.

    Raises:
        ValueError: an unknown load pattern or a period out of range.
    """

    def __init__(
        self,
        otlp_endpoint: str,
        workdir: Path,
        export_interval: float = 1.0,
        python: str = sys.executable,
        *,
        clock: Clock | None = None,
        health_timeout: float = 20.0,
        db_dsn: str | None = None,
        load_pattern: str = "steady",
        load_period: float = DIURNAL_PERIOD,
    ) -> None:
        self.load_pattern = LoadPattern(load_pattern, load_period)
        self._demo = shipped("demo")
        self.db_dsn = db_dsn
        self.declaration = load_declaration(self._demo / "shop" / "shop.json")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.health_timeout = health_timeout
        self.supervisor = ProcessSupervisor(clock or SystemClock(), self.workdir / "logs")
        self._extra_ports: set[int] = set()
        self._ports = _distinct_ports([s.name for s in self.declaration.services])
        self._load: LoadGenerator | None = None
        self._side_loads: dict[str, LoadGenerator] = {}
        self.replica_sets: dict[str, ReplicaSet] = {}
        env = _otel_env(otlp_endpoint.rstrip("/"))
        for service in self.declaration.services:
            self._write_good_config(service.name)
            if service.replicas > 1:
                self._add_replicated(service, python, export_interval, env)
            else:
                port = self._ports[service.name]
                spec = self._spec(service, service.name, port, python, export_interval, env)
                self.supervisor.add(spec)

    def _add_replicated(
        self, service: ServiceDecl, python: str, interval: float, env: dict[str, str]
    ) -> None:
        """Add the instances of ``service`` and, at the service's address, its balancer."""

        def make(instance: str) -> ProcessSpec:
            port = self._fresh_port()
            return self._spec(service, instance, port, python, interval, env)

        replicas = ReplicaSet(
            service.name, self.url(service.name), self.supervisor, make,
            declared=service.replicas, limit=MAX_REPLICAS, health_timeout=self.health_timeout,
        )
        self.replica_sets[service.name] = replicas
        backends = ",".join(f"{n}={u}" for n, u in replicas.backends().items())
        argv = [python, str(self._demo / "shop" / "lb.py"), "--name", service.name]
        argv += ["--port", str(self._ports[service.name]), "--backends", backends]
        health = self.url(service.name) + "health"
        self.supervisor.add(ProcessSpec(f"{service.name}-lb", tuple(argv), env, self.workdir,
                                        health))

    def _fresh_port(self) -> int:
        taken = {*self._ports.values(), *self._extra_ports}
        port = free_port()
        while port in taken:
            port = free_port()
        self._extra_ports.add(port)
        return port

    def _write_good_config(self, name: str) -> None:
        path = self.config_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(GOOD_CONFIG, indent=2) + "\n", encoding="utf-8")

    def config_file(self, name: str) -> Path:
        """Return the JSON configuration file of service ``name``."""
        if name not in self._ports:
            raise KeyError(f"no shop service named {name!r}")
        return self.workdir / "config" / f"{name}.json"

    def config_files(self) -> dict[str, Path]:
        """Return ``{service name: its configuration file}``."""
        return {name: self.config_file(name) for name in self._ports}

    def _spec(
        self,
        service: ServiceDecl,
        process: str,
        port: int,
        python: str,
        interval: float,
        env: dict[str, str],
    ) -> ProcessSpec:
        calls = ",".join(f"{peer}={self.url(peer)}" for peer in service.calls)
        argv = [python, str(self._demo / "shop" / "service.py"), "--name", service.name]
        argv += ["--port", str(port), "--export-interval", str(interval)]
        if calls:
            argv += ["--calls", calls]
        argv += ["--config", str(self.config_file(service.name))]
        if service.database is not None:
            argv += ["--db", str(self.db_file(service.database)), "--db-name", service.database]
            # the conninfo goes through the environment: ps shows command lines
            env = {**env, "SHOP_DB_DSN": self.db_dsn} if self.db_dsn else env
        if service.slots:
            argv += ["--slots", str(service.slots), "--service-ms", str(service.service_ms)]
        if service.replicas > 1:
            # a replica keeps its name across restarts, as a StatefulSet pod does
            argv += ["--instance-id", process]
        url = f"http://127.0.0.1:{port}/"
        return ProcessSpec(process, tuple(argv), env, self.workdir, url + "health")

    def db_file(self, database: str) -> Path:
        """Return the SQLite file of the declared database ``database``."""
        return self.workdir / f"{database}.sqlite"

    def url(self, name: str) -> str:
        """Return the base URL (with a trailing slash) of service ``name``."""
        return f"http://127.0.0.1:{self._ports[name]}/"

    def services(self) -> dict[str, str]:
        """Return ``{service name: base URL}``."""
        return {name: self.url(name) for name in self._ports}

    def entry_url(self) -> str:
        """Return the URL user traffic goes to (the gateway)."""
        return self.url(self.declaration.entry)

    def topology_file(self) -> Path:
        """Return the declared topology in Turtle (independent of ports)."""
        return self._demo / "topology.ttl"

    def start(self) -> None:
        """Start every service and wait for each ``/health``; clean up and raise on failure.

        Raises:
            ActionError: a service did not answer its health check within the timeout.
        """
        try:
            for name in reversed(self.supervisor.names()):
                self.supervisor.start(name)
            deadline = time.monotonic() + self.health_timeout
            for name in self.supervisor.names():
                left = max(0.1, deadline - time.monotonic())
                if not self.supervisor.wait_healthy(name, left):
                    tail = _tail(self.supervisor.log_path(name))
                    raise ActionError("start", name, f"not healthy; log ends: {tail}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the load and every service (SIGTERM, so telemetry is flushed); idempotent."""
        self.stop_load()
        self.supervisor.stop_all()

    def start_load(
        self, rate: float = 20.0, *, load_pattern: str | None = None,
        load_period: float | None = None,
    ) -> LoadGenerator:
        """Start (or replace) load of ``rate`` requests/s on average on the gateway.

        ``load_pattern`` and ``load_period`` override the shop's (``"steady"``: a constant
        rate; ``"diurnal"``: a sine around it). Raises ``ValueError`` for a bad pattern.
        """
        pattern = replace(
            self.load_pattern,
            kind=load_pattern or self.load_pattern.kind,
            period=load_period or self.load_pattern.period,
        )
        self.stop_load()
        self._load = LoadGenerator(self.entry_url(), rate, pattern=pattern)
        self._load.start()
        return self._load

    def stop_load(self) -> LoadStats | None:
        """Stop the load, if any, and return its counts (side loads too)."""
        for key in list(self._side_loads):
            self.stop_side_load(key)
        load, self._load = self._load, None
        return load.stop() if load is not None else None

    def start_side_load(self, key: str, url: str, rate: float) -> LoadGenerator:
        """Start (or replace) extra load ``key`` on ``url``, besides the users' traffic."""
        self.stop_side_load(key)
        load = self._side_loads[key] = LoadGenerator(url, rate, workers=64)
        load.start()
        return load

    def stop_side_load(self, key: str) -> LoadStats | None:
        """Stop the extra load ``key``, if running, and return its counts."""
        load = self._side_loads.pop(key, None)
        return load.stop() if load is not None else None

    def __enter__(self) -> Shop:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _distinct_ports(names: list[str]) -> dict[str, int]:
    """Give each name its own free port (the kernel may hand out a just-closed one twice)."""
    ports: dict[str, int] = {}
    for name in names:
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[name] = port
    return ports


def _otel_env(endpoint: str) -> dict[str, str]:
    """Point every signal at ``endpoint``, overriding per-signal variables of the caller."""
    # No bytecode caches written into the shipped demo folder.
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for signal in ("traces", "metrics", "logs"):
        env[f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"] = f"{endpoint}/v1/{signal}"
    env["OTEL_SDK_DISABLED"] = "false"
    return env


def _tail(path: Path, chars: int = 400) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip() or "(empty)"
    except OSError:
        return "(no log)"
