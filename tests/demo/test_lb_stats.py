"""Per-backend statistics of the shop's load balancer over a sliding window."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import http_status

from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.clock import SystemClock
from selfheal_kg.demo.shop import free_port
from selfheal_kg.paths import shipped

# the shop's scripts are not a package: import them as service.py does
sys.path.insert(0, str(shipped("demo") / "shop"))
from lb import Stats


def test_stats_count_requests_errors_and_mean_latency_per_backend() -> None:
    now = [100.0]
    stats = Stats(window=10.0, now=lambda: now[0])
    stats.record("checkout", False, 10.0)
    stats.record("checkout", True, 30.0)
    stats.record("checkout-2", False, 5.0)
    view = stats.view(["checkout", "checkout-2", "checkout-3"])
    assert view["checkout"] == {"requests": 2, "errors": 1, "error_ratio": 0.5, "mean_ms": 20.0}
    assert view["checkout-2"] == {"requests": 1, "errors": 0, "error_ratio": 0.0, "mean_ms": 5.0}
    assert view["checkout-3"] == {"requests": 0, "errors": 0, "error_ratio": 0.0, "mean_ms": 0.0}


def test_requests_leave_the_window_and_removed_backends_are_forgotten() -> None:
    now = [0.0]
    stats = Stats(window=10.0, now=lambda: now[0])
    stats.record("checkout", True, 50.0)
    now[0] = 6.0
    stats.record("checkout", False, 10.0)
    now[0] = 12.0
    assert stats.view(["checkout"])["checkout"] == {
        "requests": 1, "errors": 0, "error_ratio": 0.0, "mean_ms": 10.0}
    stats.record("checkout-2", True, 1.0)
    assert stats.view(["checkout"]) == {"checkout": {
        "requests": 1, "errors": 0, "error_ratio": 0.0, "mean_ms": 10.0}}
    assert stats.view(["checkout-2"])["checkout-2"]["requests"] == 0, "dropped when removed"


def _backend(status: int) -> ThreadingHTTPServer:
    class Fixed(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"ok": %d}' % status
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fixed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[str]:
    """A real balancer over a healthy backend, one answering 500 and one nobody runs."""
    good, bad = _backend(200), _backend(500)
    backends = (f"good=http://127.0.0.1:{good.server_port}/,"
                f"bad=http://127.0.0.1:{bad.server_port}/,"
                f"gone=http://127.0.0.1:{free_port()}/")
    port = free_port()
    argv = (sys.executable, str(shipped("demo") / "shop" / "lb.py"), "--name", "checkout",
            "--port", str(port), "--backends", backends)
    supervisor = ProcessSupervisor(SystemClock(), tmp_path / "logs")
    url = f"http://127.0.0.1:{port}/"
    supervisor.add(ProcessSpec("checkout-lb", argv, {}, tmp_path, url + "health"))
    try:
        supervisor.start("checkout-lb")
        assert supervisor.wait_healthy("checkout-lb", 10.0)
        yield url
    finally:
        supervisor.stop_all()
        for server in (good, bad):
            server.shutdown()
            server.server_close()


def test_the_balancer_reports_errors_per_backend(balancer: str) -> None:
    answers = [http_status(balancer + "work") for _ in range(60)]
    with urllib.request.urlopen(balancer + "admin/lb", timeout=5) as resp:
        view = json.loads(resp.read())
    assert set(view) == {"weights", "backends", "stats"}
    stats = view["stats"]
    assert set(stats) == {"good", "bad", "gone"}
    assert stats["good"]["requests"] == answers.count(200) > 0
    assert stats["good"]["errors"] == 0 and stats["good"]["error_ratio"] == 0.0
    assert stats["bad"]["requests"] == stats["bad"]["errors"] == answers.count(500) > 0
    assert stats["bad"]["error_ratio"] == 1.0
    assert stats["gone"]["requests"] == stats["gone"]["errors"] > 0, "unreachable is an error"
    assert stats["good"]["mean_ms"] > 0.0
