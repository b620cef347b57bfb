"""One service of the demo shop, parametrised by its name, port and downstream calls.

Usage::

    python demo/shop/service.py --name checkout --port 8081 \
        --calls payment=http://127.0.0.1:8082/,inventory=http://127.0.0.1:8083/ \
        [--db PATH] [--config PATH] [--export-interval 1.0] [--instance-id ID] \
        [--slots 1 --service-ms 20]

Endpoints: ``GET /`` does the work (calls every downstream, reads the database),
``GET /quote`` only the service's own work and pricing (no calls), ``GET /health``, and
``GET|POST /admin/fault`` (loopback only) to inject latency, errors, a memory leak or a
connection leak: ``{"latency_ms": 300, "error_rate": 0.5, "leak_per_s": 0.005,
"held_connections": 8}``; ``{}`` clears it. Every service exports
``process.memory.utilization`` (see ``memory.py``); with ``--db`` (or ``SHOP_DB_DSN``) it
looks an item up in its database per request through a pool of ``pool_size`` connections
(see ``db.py``); a request that gets no connection in time answers 503 ``PoolTimeout``.

``GET|POST /admin/breaker`` (loopback only) opens or closes the client-side circuit breaker
to a downstream peer (see ``breaker.py``). While it is open the service does not call that
peer and answers 200 from a fallback, ``{"service": ..., "error": null, "degraded":
["<peer>"]}``, its SERVER span marked ``shop.degraded`` = the peer(s), comma-separated.

With ``--config`` the service reads a JSON configuration file (see ``settings.py``) and
re-reads it when it changes, so a configuration push, or its rollback, takes effect
without a restart.

With ``--slots N`` the service's own work has a capacity: at most N requests work at once,
each for about ``--service-ms`` milliseconds; the others queue, so latency rises sharply as
the request rate nears N * 1000 / service-ms per second (a saturated instance).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from breaker import Breakers
from common import NAME, Telemetry, call, carrier, parse_calls, read_json_object, setup_telemetry
from db import POOL_SIZE, POOL_TIMEOUT, Stock, target_from
from memory import Memory, watch
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode
from pool import MAX_HELD
from settings import Settings

log = logging.getLogger("shop")
MAX_LATENCY_MS = 60_000
WORK_MS = (1.0, 4.0)


class Fault:
    """The injected fault of this service (latency, errors, memory or connection leak).

    Thread-safe. ``db`` is the service's database, whose pool a connection leak holds.
    """

    def __init__(self, memory: Memory | None = None, db: Stock | None = None) -> None:
        self._lock = threading.Lock()
        self.latency_ms = 0.0
        self.error_rate = 0.0
        self.memory = memory or Memory()
        self._db = db

    def set(self, spec: dict[str, Any]) -> None:
        """Replace the fault with ``spec``; raise ``ValueError`` naming a bad field."""
        unknown = set(spec) - {"latency_ms", "error_rate", "leak_per_s", "held_connections"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        latency = _number(spec, "latency_ms", 0.0, MAX_LATENCY_MS)
        rate = _number(spec, "error_rate", 0.0, 1.0)
        leak = _number(spec, "leak_per_s", 0.0, 1.0)
        held = _number(spec, "held_connections", 0.0, MAX_HELD)
        if not held.is_integer():
            raise ValueError("held_connections must be an integer")
        if held and self._db is None:
            raise ValueError("held_connections: this service has no database pool")
        with self._lock:
            self.latency_ms, self.error_rate = latency, rate
            if leak != self.memory.leak():
                self.memory.set_leak(leak)
            if self._db is not None:
                self._db.pool.hold(int(held))

    def get(self) -> dict[str, float]:
        """Return the current fault."""
        with self._lock:
            held = 0 if self._db is None else self._db.pool.held()
            return {"latency_ms": self.latency_ms, "error_rate": self.error_rate,
                    "leak_per_s": self.memory.leak(), "held_connections": held}


@dataclass(frozen=True, slots=True)
class Answer:
    """A request's outcome: HTTP status, the error (None when fine), peers skipped."""

    status: int
    error: str | None = None
    degraded: tuple[str, ...] = ()


def _number(spec: dict[str, Any], key: str, low: float, high: float) -> float:
    value = spec.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{key} must be in [{low:g}, {high:g}]")
    return float(value)


class ShopServer(ThreadingHTTPServer):
    """The HTTP server, carrying the service's configuration and telemetry."""

    daemon_threads = True

    def __init__(self, port: int, args: argparse.Namespace, telemetry: Telemetry) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.name: str = args.name
        self.calls: dict[str, str] = args.calls
        self.breakers = Breakers(self.calls)
        self.settings: Settings | None = Settings(args.config) if args.config else None
        target = target_from(args.db, args.db_name)
        self.db: Stock | None = None
        if target is not None:
            self.db = Stock(target, telemetry, self._pool_size)
        self.telemetry = telemetry
        self.fault = Fault(db=self.db)
        self.capacity = Capacity(args.slots, args.service_ms)

    def _pool_size(self) -> int:
        # Read live: a configuration push resizes the pool without a restart.
        return POOL_SIZE if self.settings is None else int(self.settings.get("pool_size"))


class Capacity:
    """The service's own work: a few ms, or a bounded number of workers when ``slots`` > 0."""

    def __init__(self, slots: int, service_ms: float) -> None:
        self._slots = threading.Semaphore(slots) if slots > 0 else None
        self._ms = service_ms

    def work(self, extra_ms: float) -> None:
        """Do one request's own work (plus an injected delay), queueing when saturated."""
        # A few milliseconds of own work, varying like real work does: a baseline with
        # natural spread, not a constant the detectors would flag at the first jitter.
        if self._slots is None:
            time.sleep((random.uniform(*WORK_MS) + extra_ms) / 1000.0)
            return
        with self._slots:
            time.sleep((self._ms * random.uniform(0.8, 1.2) + extra_ms) / 1000.0)


class Handler(BaseHTTPRequestHandler):
    """Route ``/``, ``/quote``, ``/health``, ``/admin/fault`` and ``/admin/breaker``."""

    server: ShopServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: requests are traced, not printed."""

    def do_GET(self) -> None:
        """Serve the work, the health check, the current fault or the breakers."""
        path = urlsplit(self.path).path
        if path == "/":
            self._work(self._do_work)
        elif path == "/quote":
            self._work(self._quote)
        elif path == "/health":
            self._send(200, {"status": "ok", "service": self.server.name})
        elif path == "/admin/fault":
            if self._local():
                self._send(200, self.server.fault.get())
        elif path == "/admin/breaker":
            if self._local():
                self._send(200, self.server.breakers.view())
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        """Set or clear the injected fault, or switch a breaker (loopback callers only)."""
        admin: dict[str, tuple[Callable[[dict[str, Any]], None], Callable[[], dict[str, Any]]]]
        admin = {
            "/admin/fault": (self.server.fault.set, self.server.fault.get),
            "/admin/breaker": (self.server.breakers.apply, self.server.breakers.view),
        }
        path = urlsplit(self.path).path
        if path not in admin:
            self._send(404, {"error": "not found"})
            return
        if not self._local():
            return
        apply, view = admin[path]
        try:
            apply(read_json_object(self.headers, self.rfile))
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
            return
        log.warning("%s set on %s: %s", path, self.server.name, view())
        self._send(200, view())

    def _local(self) -> bool:
        if self.client_address[0] == "127.0.0.1":
            return True
        self._send(403, {"error": "admin endpoint is loopback only"})
        return False

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _work(self, do: Callable[[], Answer]) -> None:
        tel = self.server.telemetry
        route = urlsplit(self.path).path
        start = time.perf_counter()
        attrs: dict[str, Any] = {"http.request.method": "GET", "url.scheme": "http"}
        with tel.tracer.start_as_current_span(
            f"GET {route}",
            context=extract(carrier(self.headers.items())),
            kind=SpanKind.SERVER,
            attributes={
                **attrs,
                "http.route": route,
                "url.path": route,
                "server.address": "127.0.0.1",
                "server.port": self.server.server_port,
            },
        ) as span:
            answer = do()
            span.set_attribute("http.response.status_code", answer.status)
            attrs["http.response.status_code"] = answer.status
            if answer.error is not None:
                span.set_status(Status(StatusCode.ERROR, answer.error))
                span.set_attribute("error.type", str(answer.status))
                attrs["error.type"] = str(answer.status)
            body: dict[str, Any] = {"service": self.server.name, "error": answer.error}
            if answer.degraded:
                span.set_attribute("shop.degraded", ",".join(answer.degraded))
                body["degraded"] = list(answer.degraded)
            self._send(answer.status, body)
        tel.server_duration.record(time.perf_counter() - start, {**attrs, "http.route": route})

    def _do_work(self) -> Answer:
        fault = self.server.fault.get()
        self.server.capacity.work(fault["latency_ms"])
        if fault["error_rate"] and random.random() < fault["error_rate"]:
            log.error("%s: injected error", self.server.name)
            return Answer(500, "injected error")
        degraded: list[str] = []
        for peer, url in self.server.calls.items():
            if self.server.breakers.is_open(peer):
                degraded.append(peer)  # the fallback: answer without what the peer adds
                continue
            error = call(self.server.telemetry, peer, url)
            if error is not None:
                log.error("%s: call to %s failed: %s", self.server.name, peer, error)
                return Answer(502, f"{peer}: {error}")
        if self.server.db is not None:
            error = self.server.db.lookup()
            if error == POOL_TIMEOUT:
                log.error("%s: no database connection free: %s", self.server.name, error)
                return Answer(503, f"db: {error}")
            if error is not None:
                log.error("%s: database read failed: %s", self.server.name, error)
                return Answer(500, f"db: {error}")
        # The configuration is used last (pricing the answer), so a bad push fails this
        # service's answers while its dependencies still see their usual traffic.
        answer = self._price()
        return Answer(answer.status, answer.error, tuple(degraded))

    def _quote(self) -> Answer:
        """Price without calling anything (what a price-comparison bot asks for)."""
        self.server.capacity.work(self.server.fault.get()["latency_ms"])
        return self._price()

    def _price(self) -> Answer:
        problem = None if self.server.settings is None else self.server.settings.problem()
        if problem is not None:
            log.error("%s: bad configuration: %s", self.server.name, problem)
            return Answer(500, f"config: {problem}")
        return Answer(200)


def _export_memory(tel: Telemetry, memory: Memory) -> None:
    """Export the memory gauge; die like an out-of-memory kill once it reaches the limit."""

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(memory.utilization())]

    tel.meter().create_observable_gauge(
        "process.memory.utilization", callbacks=[observe], unit="1",
        description="Memory used / the process's memory limit",
    )

    def out_of_memory() -> None:
        log.critical("out of memory: the process is killed")
        os._exit(137)  # no flush: an OOM kill gives the process no time to clean up

    watch(memory, out_of_memory)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse and check the command line."""
    parser = argparse.ArgumentParser(description="One demo shop service.")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--calls", type=parse_calls, default={})
    parser.add_argument("--db", type=Path, help="SQLite file (SHOP_DB_DSN: PostgreSQL)")
    parser.add_argument("--db-name", help="the database's node name (default: file stem)")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--export-interval", type=float, default=1.0)
    parser.add_argument("--instance-id")
    parser.add_argument("--slots", type=int, default=0, help="concurrent workers (0: no limit)")
    parser.add_argument("--service-ms", type=float, default=20.0, help="work per request, ms")
    args = parser.parse_args(argv)
    if not NAME.fullmatch(args.name):
        parser.error(f"--name {args.name!r} must match {NAME.pattern}")
    if args.db_name is not None and not NAME.fullmatch(args.db_name):
        parser.error(f"--db-name {args.db_name!r} must match {NAME.pattern}")
    if not 0 < args.port < 65536:
        parser.error("--port must be in 1..65535")
    if not 0 <= args.slots <= 256 or not 0 < args.service_ms <= 10_000:
        parser.error("--slots must be in 0..256 and --service-ms in (0, 10000]")
    if not 0.05 <= args.export_interval <= 3600:
        parser.error("--export-interval must be in [0.05, 3600] seconds")
    return args


def main(argv: list[str]) -> int:
    """Run the service until SIGTERM or SIGINT, then flush telemetry."""
    args = parse_args(argv)
    instance = args.instance_id or f"{args.name}-{uuid.uuid4().hex[:8]}"
    telemetry = setup_telemetry(args.name, instance, args.export_interval)
    server = ShopServer(args.port, args, telemetry)
    if server.db is not None:
        server.db.init()
    _export_memory(telemetry, server.fault.memory)
    server.breakers.export(telemetry.meter())

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns: call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("%s (%s) listening on 127.0.0.1:%d", args.name, instance, args.port)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    log.info("%s stopping", args.name)
    telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
