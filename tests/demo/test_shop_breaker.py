"""Client-side circuit breakers of a shop service, switched through its admin API."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import http_json

from selfheal_kg.act.http import AdminApiExecutor
from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.clock import SystemClock
from selfheal_kg.demo.shop import free_port
from selfheal_kg.paths import shipped

# the shop's scripts are not a package: import them as service.py does
sys.path.insert(0, str(shipped("demo") / "shop"))
from breaker import Breakers
from common import Telemetry
from service import ShopServer, parse_args


def test_breakers_start_closed_and_switch_by_hand() -> None:
    breakers = Breakers(["payment", "inventory"])
    assert breakers.view() == {"state": {"payment": "closed", "inventory": "closed"}}
    breakers.apply({"peer": "payment", "state": "open"})
    assert breakers.is_open("payment") and not breakers.is_open("inventory")
    breakers.apply({"peer": "payment", "state": "closed"})
    assert not breakers.is_open("payment")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"peer": "nobody", "state": "open"}, "no peer named"),
        ({"peer": "payment", "state": "half-open"}, "state"),
        ({"peer": "payment"}, "state"),
        ({"state": "open"}, "peer"),
        ({"peer": 3, "state": "open"}, "peer"),
        ({"peer": "payment", "state": "open", "shell": "ls"}, "unknown fields"),
    ],
)
def test_bad_breaker_changes_are_refused_naming_the_problem(
    spec: dict[str, Any], reason: str
) -> None:
    breakers = Breakers(["payment"])
    with pytest.raises(ValueError, match=reason):
        breakers.apply(spec)
    assert breakers.view() == {"state": {"payment": "closed"}}


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[str]:
    """A real checkout service whose peer ``payment`` points at a port nobody listens on."""
    port, dead = free_port(), free_port()
    argv = (sys.executable, str(shipped("demo") / "shop" / "service.py"), "--name", "checkout",
            "--port", str(port), "--calls", f"payment=http://127.0.0.1:{dead}/",
            "--export-interval", "3600")
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    url = f"http://127.0.0.1:{port}/"
    supervisor = ProcessSupervisor(SystemClock(), tmp_path / "logs")
    supervisor.add(ProcessSpec("checkout", argv, env, tmp_path, url + "health"))
    try:
        supervisor.start("checkout")
        assert supervisor.wait_healthy("checkout", 15.0)
        yield url
    finally:
        supervisor.stop_all()


def test_an_open_breaker_answers_from_the_fallback_without_calling_the_peer(checkout: str) -> None:
    assert http_json(checkout)[0] == 502, "the peer is down: a closed breaker calls it and fails"
    assert http_json(checkout + "admin/breaker") == (200, {"state": {"payment": "closed"}})
    opened = json.dumps({"peer": "payment", "state": "open"}).encode()
    assert http_json(checkout + "admin/breaker", opened) == (200, {"state": {"payment": "open"}})
    assert http_json(checkout) == (
        200, {"service": "checkout", "error": None, "degraded": ["payment"]})
    closed = json.dumps({"peer": "payment", "state": "closed"}).encode()
    assert http_json(checkout + "admin/breaker", closed)[0] == 200
    assert http_json(checkout)[0] == 502, "closed again: the service calls its peer again"


def test_the_admin_api_executor_trips_and_resets_the_breaker(checkout: str) -> None:
    executor = AdminApiExecutor({"checkout": checkout})
    try:
        before = executor.snapshot("breaker", "checkout", {"peer": "payment", "state": "open"})
        assert before == {"peer": "payment", "state": "closed"}
        report = executor.execute("breaker", "checkout", {"peer": "payment", "state": "open"})
        assert report.ok, report.detail
        assert http_json(checkout)[0] == 200
        assert executor.restore("checkout", before).ok
    finally:
        executor.close()
    assert http_json(checkout + "admin/breaker")[1] == {"state": {"payment": "closed"}}


def test_bad_admin_requests_are_refused_and_unknown_paths_are_not_found(checkout: str) -> None:
    for body, reason in [
        (b'{"peer": "inventory", "state": "open"}', "no peer named"),
        (b'{"peer": "payment", "state": "ajar"}', "state"),
        (b"[not json", "Expecting value"),
        (b'["peer"]', "JSON object"),
    ]:
        status, answer = http_json(checkout + "admin/breaker", body)
        assert status == 400 and reason in answer["error"], body
    assert http_json(checkout + "admin/breakers")[0] == 404
    assert http_json(checkout + "admin/breakers", b"{}")[0] == 404
    status, answer = http_json(checkout + "admin/fault", b'{"held_connections": 1}')
    assert status == 400 and "no database pool" in answer["error"]
    assert http_json(checkout + "admin/breaker")[1] == {"state": {"payment": "closed"}}


def test_the_degraded_answer_marks_its_server_span_and_the_gauge_shows_the_open_breaker() -> None:
    reader, spans = InMemoryMetricReader(), InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    meter = meter_provider.get_meter("test")
    tel = Telemetry(
        tracer_provider.get_tracer("test"), meter.create_histogram("a"),
        meter.create_histogram("b"), meter.create_histogram("c"),
        tracer_provider, meter_provider, LoggerProvider(),
    )
    args = parse_args(["--name", "checkout", "--port", "1",
                       "--calls", f"payment=http://127.0.0.1:{free_port()}/"])
    server = ShopServer(0, args, tel)
    server.breakers.export(tel.meter())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        server.breakers.apply({"peer": "payment", "state": "open"})
        assert http_json(url)[0] == 200
        data = reader.get_metrics_data()
    finally:
        server.shutdown()
        server.server_close()
        tel.shutdown()
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET /"]
    assert span.attributes is not None and span.attributes["shop.degraded"] == "payment"
    assert not [s for s in spans.get_finished_spans() if s.name == "GET"], "no call made"
    assert data is not None
    points: list[Any] = [p for rm in data.resource_metrics for sm in rm.scope_metrics
                         for m in sm.metrics if m.name == "shop.breaker.open"
                         for p in m.data.data_points]
    gauges = [(p.value, dict(p.attributes)) for p in points]
    assert gauges == [(1, {"peer": "payment"})]
