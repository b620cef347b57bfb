"""One service of the demo shop, parametrised by its name, port and downstream calls.

Usage::

    python demo/shop/service.py --name checkout --port 8081 \
        --calls payment=http://127.0.0.1:8082/,inventory=http://127.0.0.1:8083/ \
        [--db PATH] [--config PATH] [--export-interval 1.0] [--instance-id ID] \
        [--slots 1 --service-ms 20]

Endpoints: ``GET /`` does the work (calls every downstream, reads the database),
``GET /quote`` only the service's own work and pricing (no calls), ``GET /health``, and
``GET|POST /admin/fault`` (loopback only) to inject latency, errors or a memory leak:
``{"latency_ms": 300, "error_rate": 0.5, "leak_per_s": 0.005}``; ``{}`` clears it.
Every service exports ``process.memory.utilization`` (see ``memory.py``); with ``--db``
(or ``SHOP_DB_DSN``) it looks an item up in its database per request (see ``db.py``).

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
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import NAME, Telemetry, parse_calls, setup_telemetry
from db import Stock, target_from
from memory import Memory, watch
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode
from settings import Settings

log = logging.getLogger("shop")
CALL_TIMEOUT = 1.0
MAX_ADMIN_BODY = 4096
MAX_LATENCY_MS = 60_000
WORK_MS = (1.0, 4.0)


class Fault:
    """The injected fault of this service (latency, error rate, memory leak), thread-safe."""

    def __init__(self, memory: Memory | None = None) -> None:
        self._lock = threading.Lock()
        self.latency_ms = 0.0
        self.error_rate = 0.0
        self.memory = memory or Memory()

    def set(self, spec: dict[str, Any]) -> None:
        """Replace the fault with ``spec``; raise ``ValueError`` naming a bad field."""
        unknown = set(spec) - {"latency_ms", "error_rate", "leak_per_s"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        latency = _number(spec, "latency_ms", 0.0, MAX_LATENCY_MS)
        rate = _number(spec, "error_rate", 0.0, 1.0)
        leak = _number(spec, "leak_per_s", 0.0, 1.0)
        with self._lock:
            self.latency_ms, self.error_rate = latency, rate
            if leak != self.memory.leak():
                self.memory.set_leak(leak)

    def get(self) -> dict[str, float]:
        """Return the current fault."""
        with self._lock:
            return {"latency_ms": self.latency_ms, "error_rate": self.error_rate,
                    "leak_per_s": self.memory.leak()}


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
        target = target_from(args.db, args.db_name)
        self.db: Stock | None = None if target is None else Stock(target, telemetry)
        self.telemetry = telemetry
        self.fault = Fault()
        self.settings: Settings | None = Settings(args.config) if args.config else None
        self.capacity = Capacity(args.slots, args.service_ms)


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
    """Route ``/``, ``/health`` and ``/admin/fault``."""

    server: ShopServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: requests are traced, not printed."""

    def do_GET(self) -> None:
        """Serve the work, the health check or the current fault."""
        path = urlsplit(self.path).path
        if path == "/":
            self._work(self._do_work)
        elif path == "/quote":
            self._work(self._quote)
        elif path == "/health":
            self._send(200, {"status": "ok", "service": self.server.name})
        elif path == "/admin/fault" and self._local():
            self._send(200, self.server.fault.get())
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        """Set or clear the injected fault (loopback callers only)."""
        if urlsplit(self.path).path != "/admin/fault":
            self._send(404, {"error": "not found"})
            return
        if not self._local():
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 <= length <= MAX_ADMIN_BODY:
                raise ValueError(f"body must be at most {MAX_ADMIN_BODY} bytes")
            spec = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("body must be a JSON object")
            self.server.fault.set(spec)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self._send(400, {"error": str(exc)})
            return
        log.warning("fault set on %s: %s", self.server.name, self.server.fault.get())
        self._send(200, self.server.fault.get())

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

    def _work(self, do: Callable[[], tuple[int, str | None]]) -> None:
        tel = self.server.telemetry
        route = urlsplit(self.path).path
        start = time.perf_counter()
        attrs: dict[str, Any] = {"http.request.method": "GET", "url.scheme": "http"}
        with tel.tracer.start_as_current_span(
            f"GET {route}",
            context=extract(_carrier(self.headers.items())),
            kind=SpanKind.SERVER,
            attributes={
                **attrs,
                "http.route": route,
                "url.path": route,
                "server.address": "127.0.0.1",
                "server.port": self.server.server_port,
            },
        ) as span:
            status, error = do()
            span.set_attribute("http.response.status_code", status)
            attrs["http.response.status_code"] = status
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
                span.set_attribute("error.type", str(status))
                attrs["error.type"] = str(status)
            self._send(status, {"service": self.server.name, "error": error})
        tel.server_duration.record(time.perf_counter() - start, {**attrs, "http.route": route})

    def _do_work(self) -> tuple[int, str | None]:
        fault = self.server.fault.get()
        self.server.capacity.work(fault["latency_ms"])
        if fault["error_rate"] and random.random() < fault["error_rate"]:
            log.error("%s: injected error", self.server.name)
            return 500, "injected error"
        for peer, url in self.server.calls.items():
            error = call(self.server.telemetry, peer, url)
            if error is not None:
                log.error("%s: call to %s failed: %s", self.server.name, peer, error)
                return 502, f"{peer}: {error}"
        if self.server.db is not None:
            error = self.server.db.lookup()
            if error is not None:
                log.error("%s: database read failed: %s", self.server.name, error)
                return 500, f"db: {error}"
        # The configuration is used last (pricing the answer), so a bad push fails this
        # service's answers while its dependencies still see their usual traffic.
        return self._price()

    def _quote(self) -> tuple[int, str | None]:
        """Price without calling anything (what a price-comparison bot asks for)."""
        self.server.capacity.work(self.server.fault.get()["latency_ms"])
        return self._price()

    def _price(self) -> tuple[int, str | None]:
        problem = None if self.server.settings is None else self.server.settings.problem()
        if problem is not None:
            log.error("%s: bad configuration: %s", self.server.name, problem)
            return 500, f"config: {problem}"
        return 200, None


def _carrier(headers: Any) -> dict[str, str]:
    """Return the headers with lower-case names (urllib sends ``Traceparent``)."""
    return {str(k).lower(): str(v) for k, v in headers}


def call(tel: Telemetry, peer: str, url: str) -> str | None:
    """GET ``url`` inside a CLIENT span; return the ``error.type`` on failure, else ``None``."""
    parts = urlsplit(url)
    attrs: dict[str, Any] = {
        "http.request.method": "GET",
        "server.address": parts.hostname or "",
        "server.port": parts.port or 80,
        "service.peer.name": peer,
    }
    start = time.perf_counter()
    with tel.tracer.start_as_current_span(
        "GET", kind=SpanKind.CLIENT, attributes={**attrs, "url.full": url}
    ) as span:
        headers: dict[str, str] = {}
        inject(headers)
        status, error = _fetch(url, headers)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            attrs["http.response.status_code"] = status
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
            span.set_attribute("error.type", error)
            attrs["error.type"] = error
    tel.client_duration.record(time.perf_counter() - start, attrs)
    return error


def _fetch(url: str, headers: dict[str, str]) -> tuple[int | None, str | None]:
    """Return (status code or None, error.type or None) of one GET."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as resp:
            resp.read()
            return int(resp.status), None
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, str(exc.code)
    except urllib.error.URLError as exc:
        reason = exc.reason
        return None, "timeout" if isinstance(reason, TimeoutError) else type(reason).__name__
    except TimeoutError:
        return None, "timeout"
    except OSError as exc:
        return None, type(exc).__name__


def _export_memory(tel: Telemetry, memory: Memory) -> None:
    """Export the memory gauge; die like an out-of-memory kill once it reaches the limit."""

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(memory.utilization())]

    meter = tel.meter_provider.get_meter("selfheal-kg.demo.shop")
    meter.create_observable_gauge(
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
