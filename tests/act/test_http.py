"""The HTTP executors, against a real stdlib HTTP server on a loopback port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.http import AdminApiExecutor, HttpEndpoint, HttpExecutor
from selfheal_kg.act.params import ParamSpec
from selfheal_kg.errors import ActionError, UnsafeParameter


class FakeAdmin:
    """The admin API contract of docs/executors.md, plus a webhook sink."""

    def __init__(self) -> None:
        self.weights: dict[str, int] = {"checkout-1": 100, "checkout-2": 100}
        self.breakers: dict[str, str] = {"payments": "closed"}
        self.requests: list[tuple[str, str, Any]] = []


def make_handler(admin: FakeAdmin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            admin.requests.append(("GET", url.path, parse_qs(url.query)))
            if url.path == "/admin/lb":
                self._reply(200, {"weights": admin.weights})
            elif url.path == "/admin/breaker":
                self._reply(200, {"state": admin.breakers})
            elif url.path == "/hook":
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": "no such path"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            admin.requests.append((self.command, self.path, body))
            if self.path == "/admin/lb":
                admin.weights[body["instance"]] = body["weight"]
                self._reply(200, {"ok": True})
            elif self.path == "/admin/breaker":
                admin.breakers[body["peer"]] = body["state"]
                self._reply(200, {"ok": True})
            elif self.path == "/hook":
                self._reply(202, {"accepted": True})
            else:
                self._reply(500, {"error": "boom"})

        def do_PUT(self) -> None:
            self.do_POST()

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, FakeAdmin]]:
    admin = FakeAdmin()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(admin))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", admin
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def admin_ex(server: tuple[str, FakeAdmin]) -> Iterator[AdminApiExecutor]:
    ex = AdminApiExecutor({"checkout-1": server[0], "checkout": server[0]}, timeout=2.0)
    yield ex
    ex.close()


def test_drain_and_restore_an_instance(
    admin_ex: AdminApiExecutor, server: tuple[str, FakeAdmin]
) -> None:
    _, admin = server
    point = admin_ex.snapshot("lb_weight", "checkout-1", {"weight": 0})
    assert point == {"instance": "checkout-1", "weight": 100}
    assert admin_ex.execute("lb_weight", "checkout-1", {"weight": 0}).ok
    assert admin.weights["checkout-1"] == 0
    assert admin.requests[-1] == ("POST", "/admin/lb", {"instance": "checkout-1", "weight": 0})
    assert admin_ex.restore("checkout-1", point).ok
    assert admin.weights["checkout-1"] == 100


def test_trip_and_reset_a_breaker(
    admin_ex: AdminApiExecutor, server: tuple[str, FakeAdmin]
) -> None:
    _, admin = server
    params = {"peer": "payments", "state": "open"}
    point = admin_ex.snapshot("breaker", "checkout", params)
    assert point == {"peer": "payments", "state": "closed"}
    assert admin_ex.execute("breaker", "checkout", params).ok
    assert admin.breakers["payments"] == "open"
    assert admin_ex.restore("checkout", point).ok
    assert admin.breakers["payments"] == "closed"


def test_admin_params_are_validated(admin_ex: AdminApiExecutor) -> None:
    for action, params in (
        ("lb_weight", {"weight": -1}),
        ("lb_weight", {"weight": 5000}),
        ("lb_weight", {"weight": 0, "instance": "a; rm -rf /"}),
        ("breaker", {"peer": "payments", "state": "half-open"}),
        ("breaker", {"peer": "../../etc", "state": "open"}),
    ):
        with pytest.raises(UnsafeParameter):
            admin_ex.execute(action, "checkout", params)


def test_unknown_instance_or_target(admin_ex: AdminApiExecutor) -> None:
    with pytest.raises(ActionError, match="no instance 'ghost'"):
        admin_ex.snapshot("lb_weight", "checkout", {"weight": 0, "instance": "ghost"})
    with pytest.raises(ActionError, match="no admin URL"):
        admin_ex.execute("lb_weight", "cart", {"weight": 0})


def test_unreachable_admin_api_is_an_action_error() -> None:
    ex = AdminApiExecutor({"checkout": "http://127.0.0.1:9"}, timeout=1.0)
    with pytest.raises(ActionError, match="ConnectError"):
        ex.snapshot("lb_weight", "checkout", {"weight": 0})
    ex.close()


def test_webhook_post_sends_target_and_params(server: tuple[str, FakeAdmin]) -> None:
    url, admin = server
    ex = HttpExecutor({
        "notify": HttpEndpoint(f"{url}/hook", params={"level": ParamSpec("str", enum=("warn",))}),
    })
    report = ex.execute("notify", "checkout", {"level": "warn"})
    assert report.ok and "HTTP 202" in report.detail
    assert admin.requests[-1] == ("POST", "/hook", {"target": "checkout", "level": "warn"})
    ex.close()


def test_webhook_get_sends_query_params(server: tuple[str, FakeAdmin]) -> None:
    url, admin = server
    ex = HttpExecutor({"ping": HttpEndpoint(f"{url}/hook", method="GET")})
    assert ex.execute("ping", "checkout", {}).ok
    assert admin.requests[-1] == ("GET", "/hook", {"target": ["checkout"]})
    ex.close()


def test_non_2xx_is_a_failed_report(server: tuple[str, FakeAdmin]) -> None:
    url, _ = server
    ex = HttpExecutor({"broken": HttpEndpoint(f"{url}/nowhere", method="PUT")})
    report = ex.execute("broken", "checkout", {})
    assert not report.ok
    assert "HTTP 500" in report.detail
    ex.close()


def test_webhook_undo(server: tuple[str, FakeAdmin]) -> None:
    url, admin = server
    ex = HttpExecutor({
        "pause": HttpEndpoint(f"{url}/hook", undo="resume"),
        "resume": HttpEndpoint(f"{url}/hook", method="PUT"),
    })
    point = ex.snapshot("pause", "checkout", {})
    assert ex.restore("checkout", point).ok
    assert admin.requests[-1] == ("PUT", "/hook", {"target": "checkout"})
    ex.close()


def test_endpoint_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpEndpoint("file:///etc/passwd")
    with pytest.raises(ValueError, match="undo"):
        HttpExecutor({"a": HttpEndpoint("http://x/", undo="b")})
    with pytest.raises(ValueError, match="admin URL"):
        AdminApiExecutor({"x": "ftp://x"})


def test_hostile_target_sends_nothing(server: tuple[str, FakeAdmin]) -> None:
    url, admin = server
    ex = HttpExecutor({"notify": HttpEndpoint(f"{url}/hook")})
    with pytest.raises(UnsafeParameter):
        ex.execute("notify", "x\r\nHost: evil", {})
    assert admin.requests == []
    ex.close()


def test_are_executors() -> None:
    a: Executor = AdminApiExecutor({})
    b: Executor = HttpExecutor({})
    assert a.actions == frozenset({"lb_weight", "breaker"})
    assert b.actions == frozenset()
