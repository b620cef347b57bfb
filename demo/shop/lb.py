"""A small HTTP load balancer in front of the replicas of one demo shop service.

Usage::

    python demo/shop/lb.py --name checkout --port 8090 \
        --backends checkout=http://127.0.0.1:8081/,checkout-2=http://127.0.0.1:8082/

``GET /health`` is the balancer's own; every other GET is forwarded, unchanged (trace
context included), to one backend picked at random in proportion to its weight; a backend
that cannot be reached is skipped for the next one. It exports no telemetry: like an L4
balancer, it is invisible in the traces (callers see the service behind it).

The loopback-only admin API matches ``selfheal_kg.act.http.AdminApiExecutor``:

* ``GET  /admin/lb`` → ``{"weights": {"<instance>": <int>}, "backends": {"<instance>": url},
  "stats": {"<instance>": {"requests": n, "errors": n, "error_ratio": x, "mean_ms": y}}}``;
  ``stats`` covers the last ``WINDOW`` (10) seconds of forwarded requests per backend:
  ``errors`` are 5xx answers and failed attempts to reach it, ``error_ratio`` is errors /
  requests (0 without requests), ``mean_ms`` the mean time to its answer or failure.
* ``POST /admin/lb`` ``{"instance": "<instance>", "weight": <int>}`` sets a weight (0 drains);
  with ``"url"`` it adds (or moves) a backend; ``{"instance": ..., "remove": true}`` removes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import NAME, parse_calls

log = logging.getLogger("lb")
FORWARD_TIMEOUT = 5.0
MAX_ADMIN_BODY = 4096
MAX_WEIGHT = 1000
FORWARDED = ("traceparent", "tracestate", "baggage")
WINDOW = 10.0  # seconds of per-backend statistics


class Stats:
    """Requests, errors and latency per backend over a sliding window, thread-safe.

    Args:
        window: seconds a request counts for.
        now: the monotonic clock, in seconds.
    """

    def __init__(self, window: float = WINDOW, now: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._window, self._now = window, now
        self._seen: dict[str, deque[tuple[float, bool, float]]] = {}

    def record(self, instance: str, error: bool, ms: float) -> None:
        """Count one request to ``instance``: whether it failed, and how long it took."""
        with self._lock:
            self._seen.setdefault(instance, deque()).append((self._now(), error, ms))

    def view(self, instances: list[str]) -> dict[str, dict[str, float]]:
        """Return the window's statistics of each of ``instances`` (zeros without requests)."""
        cutoff = self._now() - self._window
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            for name in list(self._seen):
                if name not in instances:
                    del self._seen[name]  # a removed backend's history goes with it
            for name in instances:
                seen = self._seen.get(name, deque())
                while seen and seen[0][0] < cutoff:
                    seen.popleft()
                out[name] = _summary(seen)
        return out


def _summary(seen: deque[tuple[float, bool, float]]) -> dict[str, float]:
    requests = len(seen)
    errors = sum(1 for _, error, _ in seen if error)
    mean = sum(ms for _, _, ms in seen) / requests if requests else 0.0
    return {"requests": requests, "errors": errors,
            "error_ratio": errors / requests if requests else 0.0, "mean_ms": round(mean, 3)}


class Pool:
    """The backends and their weights, thread-safe."""

    def __init__(self, backends: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._urls = dict(backends)
        self._weights = dict.fromkeys(backends, 100)

    def view(self) -> dict[str, Any]:
        """Return the weights and backend URLs."""
        with self._lock:
            return {"weights": dict(self._weights), "backends": dict(self._urls)}

    def order(self) -> list[str]:
        """Return the URLs of the backends with weight > 0, a weighted random one first."""
        return [url for _, url in self.ranked()]

    def ranked(self) -> list[tuple[str, str]]:
        """Return ``(instance, URL)`` of the backends with weight > 0, a weighted random first."""
        with self._lock:
            live = [((n, self._urls[n]), w) for n, w in self._weights.items() if w > 0]
        if not live:
            return []
        first = random.choices([b for b, _ in live], [w for _, w in live])[0]
        return [first, *(b for b, _ in live if b != first)]

    def apply(self, spec: dict[str, Any]) -> None:
        """Apply one admin change; raise ``ValueError`` naming a bad field."""
        unknown = set(spec) - {"instance", "weight", "url", "remove", "target"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        name = spec.get("instance")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"instance must match {NAME.pattern}")
        with self._lock:
            if spec.get("remove") is True:
                self._remove(name)
                return
            if "url" in spec:
                self._urls[name] = _url(spec["url"])
                self._weights.setdefault(name, 100)
            if name not in self._urls:
                raise ValueError(f"no backend named {name!r}")
            if "weight" in spec:
                self._weights[name] = _weight(spec["weight"])

    def _remove(self, name: str) -> None:
        if name not in self._urls:
            raise ValueError(f"no backend named {name!r}")
        del self._urls[name], self._weights[name]


def _url(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("url must be a string")
    parts = urlsplit(value)
    # Backends are local replicas: a balancer that could be pointed anywhere is an open proxy.
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.port is None:
        raise ValueError("url must be http://127.0.0.1:PORT/")
    return value


def _weight(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        raise ValueError(f"weight must be an integer in [0, {MAX_WEIGHT}]")
    return value


class BalancerServer(ThreadingHTTPServer):
    """The HTTP server, carrying the pool and its statistics."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, name: str, pool: Pool, stats: Stats | None = None) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.name = name
        self.pool = pool
        self.stats = stats or Stats()

    def admin_view(self) -> dict[str, Any]:
        """Return the pool's weights and backends, and each backend's statistics."""
        view = self.pool.view()
        return {**view, "stats": self.stats.view(list(view["backends"]))}


class Handler(BaseHTTPRequestHandler):
    """Route ``/health`` and ``/admin/lb``; forward everything else."""

    server: BalancerServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        """Answer the health check or the admin view, or forward the request."""
        path = urlsplit(self.path).path
        if path == "/health":
            self._send(200, json.dumps({"status": "ok", "balancer": self.server.name}).encode())
        elif path == "/admin/lb":
            if self._local():
                self._send(200, json.dumps(self.server.admin_view()).encode())
        else:
            self._forward()

    def do_POST(self) -> None:
        """Change the pool (loopback callers only)."""
        if urlsplit(self.path).path != "/admin/lb":
            self._send(404, b'{"error": "not found"}')
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
            self.server.pool.apply(spec)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            self._send(400, json.dumps({"error": str(exc)}).encode())
            return
        log.warning("%s pool now %s", self.server.name, self.server.pool.view()["weights"])
        self._send(200, json.dumps(self.server.admin_view()).encode())

    def _local(self) -> bool:
        if self.client_address[0] == "127.0.0.1":
            return True
        self._send(403, b'{"error": "admin endpoint is loopback only"}')
        return False

    def _forward(self) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED}
        for name, base in self.server.pool.ranked():
            start = time.perf_counter()
            answer = _fetch(base.rstrip("/") + self.path, headers)
            failed = answer is None or answer[0] >= 500
            self.server.stats.record(name, failed, (time.perf_counter() - start) * 1000.0)
            if answer is not None:
                self._send(*answer)
                return
        self._send(503, b'{"error": "no backend available"}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes] | None:
    """Return (status, body) of one GET, or ``None`` when the backend cannot be reached."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, body
    except (urllib.error.URLError, OSError):
        return None


def main(argv: list[str]) -> int:
    """Run the balancer until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="Load balancer of one demo shop service.")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backends", type=parse_calls, required=True)
    args = parser.parse_args(argv)
    if not NAME.fullmatch(args.name) or not 0 < args.port < 65536:
        parser.error("--name must be a service name and --port in 1..65535")
    logging.basicConfig(level=logging.INFO)
    server = BalancerServer(args.port, args.name, Pool(args.backends))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("balancer %s on 127.0.0.1:%d", args.name, args.port)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
