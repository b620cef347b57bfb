"""The pool-exhaustion and bad-instance faults, on real service processes of a Shop."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import http_status

from selfheal_kg.demo import faults
from selfheal_kg.demo.shop import Shop
from selfheal_kg.errors import UnsafeParameter


class _Sink(BaseHTTPRequestHandler):
    """Accept and drop telemetry, so stopping services does not wait on export retries."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    """A shop whose processes the tests start one by one."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    shop = Shop(f"http://127.0.0.1:{sink.server_port}", tmp_path, export_interval=3600.0)
    try:
        yield shop
    finally:
        shop.stop()
        sink.shutdown()
        sink.server_close()


def _start(shop: Shop, name: str) -> None:
    shop.supervisor.start(name)
    assert shop.supervisor.wait_healthy(name, 15.0), f"{name} did not start"


def test_pool_exhaustion_holds_the_whole_pool_and_revert_gives_it_back(shop: Shop) -> None:
    _start(shop, "inventory")
    url = shop.url("inventory")
    assert http_status(url) == 200
    injected = faults.inject(shop, "pool-exhaustion", "inventory")
    assert injected.params == {"held_connections": 8}  # the configured pool size
    assert faults.admin_fault(shop, "inventory")["held_connections"] == 8
    assert http_status(url) == 503
    faults.revert(shop, injected)
    assert faults.admin_fault(shop, "inventory")["held_connections"] == 0
    assert http_status(url) == 200


def test_pool_exhaustion_follows_the_configured_size_and_checks_its_parameter(
    shop: Shop,
) -> None:
    config = shop.config_file("inventory")
    config.write_text(json.dumps({"currency": "EUR", "tax_rate": 0.2, "pool_size": 3}))
    _start(shop, "inventory")
    injected = faults.inject(shop, "pool-exhaustion", "inventory")
    assert injected.params == {"held_connections": 3}
    with pytest.raises(UnsafeParameter, match="held_connections"):
        faults.inject(shop, "pool-exhaustion", "inventory", {"held_connections": "all"})
    faults.revert(shop, injected)
    assert faults.admin_fault(shop, "inventory")["held_connections"] == 0


def test_bad_instance_fails_the_last_declared_instance_only(shop: Shop) -> None:
    _start(shop, "checkout-2")
    injected = faults.inject(shop, "bad-instance", "checkout")
    instance_url = shop.replica_sets["checkout"].backends()["checkout-2"]
    assert injected.params["instance"] == "checkout-2"
    assert injected.params["url"] == instance_url != shop.url("checkout")
    state = faults.admin_fault_at(instance_url, "checkout-2")
    assert state["error_rate"] == 1.0
    assert http_status(instance_url) == 500
    faults.revert(shop, injected)
    assert faults.admin_fault_at(instance_url, "checkout-2")["error_rate"] == 0.0


def test_bad_instance_revert_skips_a_stopped_instance_and_needs_replicas(shop: Shop) -> None:
    _start(shop, "checkout-2")
    injected = faults.inject(shop, "bad-instance", "checkout")
    shop.supervisor.stop("checkout-2")
    faults.revert(shop, injected)  # nothing to clear: the instance is gone
    with pytest.raises(UnsafeParameter, match="not replicated"):
        faults.inject(shop, "bad-instance", "payment")
    with pytest.raises(UnsafeParameter, match="error_rate"):
        faults.inject(shop, "bad-instance", "checkout", {"error_rate": 2})
