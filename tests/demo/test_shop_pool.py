"""The shop's bounded database connection pool: waits, timeouts, live resize, a leak, metrics."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
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

from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.clock import SystemClock
from selfheal_kg.demo.shop import free_port
from selfheal_kg.paths import shipped

# the shop's scripts are not a package: import them as service.py does
sys.path.insert(0, str(shipped("demo") / "shop"))
from common import Telemetry
from db import DbTarget, Stock
from pool import ConnectionPool, PoolTimeout

WAIT = 0.05  # a short pool wait: the tests see timeouts without waiting half a second


def _pool(size: list[int], closed: list[str]) -> ConnectionPool[str]:
    return ConnectionPool(closed.append, lambda: size[0], wait=WAIT)


def test_the_pool_hands_out_at_most_size_slots_then_times_out() -> None:
    closed: list[str] = []
    pool = _pool([2], closed)
    first, _ = pool.acquire()
    second, _ = pool.acquire()
    assert first is None and second is None  # nothing idle yet: the caller opens them
    assert pool.utilization() == 1.0
    with pytest.raises(PoolTimeout):
        pool.acquire()
    pool.release("conn-a")
    conn, waited = pool.acquire()
    assert conn == "conn-a", "an idle connection is reused, not reopened"
    assert waited == 0.0, "a free connection is no wait at all"
    pool.release("conn-a", broken=True)
    assert closed == ["conn-a"], "a broken connection is closed, not kept"


def test_a_waiting_request_gets_the_connection_another_gives_back() -> None:
    pool: ConnectionPool[str] = ConnectionPool(lambda c: None, lambda: 1, wait=5.0)
    pool.acquire()
    timer = threading.Timer(0.02, pool.release, args=("conn-a",))
    timer.start()
    conn, waited = pool.acquire()
    timer.join()
    assert conn == "conn-a" and waited > 0.0


def test_a_bigger_size_takes_effect_on_the_running_pool_and_a_smaller_one_closes_extras() -> None:
    closed: list[str] = []
    size = [1]
    pool = _pool(size, closed)
    pool.acquire()
    with pytest.raises(PoolTimeout):
        pool.acquire()
    size[0] = 2
    pool.acquire()
    assert pool.utilization() == 1.0
    size[0] = 1
    pool.release("a")
    pool.release("b")
    assert closed == ["a"], "the pool keeps no more idle connections than its size"


def test_held_connections_occupy_the_pool_until_given_back() -> None:
    pool = _pool([4], [])
    pool.hold(3)
    assert pool.utilization() == 0.75 and pool.held() == 3
    pool.acquire()
    with pytest.raises(PoolTimeout):
        pool.acquire()
    pool.hold(300 - 44)  # a leak cannot take more than the pool has
    assert pool.utilization() == 1.0
    pool.hold(0)
    pool.acquire()
    assert pool.utilization() == 0.5
    with pytest.raises(ValueError, match="held_connections"):
        pool.hold(257)


# -- the inventory's Stock with its pool and metrics, in process ------------------------------


def _telemetry() -> tuple[Telemetry, InMemoryMetricReader, InMemorySpanExporter]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    meter = meter_provider.get_meter("test")
    tel = Telemetry(
        tracer=tracer_provider.get_tracer("test"),
        server_duration=meter.create_histogram("http.server.request.duration"),
        client_duration=meter.create_histogram("http.client.request.duration"),
        db_duration=meter.create_histogram("db.client.operation.duration"),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=LoggerProvider(),
    )
    return tel, reader, spans


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {m.name: list(m.data.data_points)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_a_timed_out_lookup_is_counted_and_never_blamed_on_the_database(tmp_path: Path) -> None:
    tel, reader, spans = _telemetry()
    stock = Stock(DbTarget("sqlite", str(tmp_path / "inv.sqlite"), "inventory-db"), tel,
                  lambda: 2, wait=WAIT)
    stock.init()
    try:
        assert stock.lookup() is None
        stock.pool.hold(2)
        assert stock.lookup() == "PoolTimeout"
        points = _points(reader)
    finally:
        stock.pool.close()
        tel.shutdown()
    pool_attrs = {"db.client.connection.pool.name": "inventory-db"}
    wait = points["db.client.connection.wait_time"]
    assert [(p.count, dict(p.attributes)) for p in wait] == [(2, pool_attrs)]
    assert wait[0].max >= WAIT, "the timed-out lookup waited the pool's whole wait"
    assert wait[0].min == 0.0, "the lookup with a free connection did not wait"
    assert [(p.value, dict(p.attributes)) for p in points["db.client.connection.timeouts"]] == [
        (1, pool_attrs)]
    assert [(p.value, dict(p.attributes))
            for p in points["db.client.connection.utilization"]] == [(1.0, pool_attrs)]
    db_spans = [s for s in spans.get_finished_spans() if s.name == "SELECT stock"]
    assert len(db_spans) == 1, "only the lookup that got a connection has a database span"
    assert db_spans[0].status.is_ok


def test_a_missing_database_file_is_a_database_error_in_the_client_span(tmp_path: Path) -> None:
    tel, _, spans = _telemetry()
    stock = Stock(DbTarget("sqlite", str(tmp_path / "absent.sqlite"), "inventory-db"), tel)
    try:
        assert stock.lookup() == "OperationalError"
        assert stock.pool.utilization() == 0.0, "the failed lookup gave its slot back"
    finally:
        tel.shutdown()
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None and span.attributes["error.type"] == "OperationalError"


# -- a real inventory service process ---------------------------------------------------------


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``cond`` until true (a real process re-reads its file on its own time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _write(path: Path, doc: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


@pytest.fixture
def inventory(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real inventory service with an SQLite database and a pool of 2; its URL and config."""
    config = tmp_path / "inventory.json"
    _write(config, {"currency": "EUR", "tax_rate": 0.2, "pool_size": 2})
    port = free_port()
    argv = (sys.executable, str(shipped("demo") / "shop" / "service.py"), "--name", "inventory",
            "--port", str(port), "--db", str(tmp_path / "inventory-db.sqlite"),
            "--db-name", "inventory-db", "--config", str(config), "--export-interval", "3600")
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    url = f"http://127.0.0.1:{port}/"
    supervisor = ProcessSupervisor(SystemClock(), tmp_path / "logs")
    supervisor.add(ProcessSpec("inventory", argv, env, tmp_path, url + "health"))
    try:
        supervisor.start("inventory")
        assert supervisor.wait_healthy("inventory", 15.0)
        yield url, config
    finally:
        supervisor.stop_all()


def test_a_connection_leak_exhausts_the_pool_and_a_bigger_pool_heals_it_without_restart(
    inventory: tuple[str, Path],
) -> None:
    url, config = inventory
    assert http_json(url) == (200, {"service": "inventory", "error": None})
    status, fault = http_json(url + "admin/fault", {"held_connections": 2})
    assert status == 200 and fault["held_connections"] == 2
    assert http_json(url) == (503, {"service": "inventory", "error": "db: PoolTimeout"})
    _write(config, {"currency": "EUR", "tax_rate": 0.2, "pool_size": 4})
    assert wait_until(lambda: http_json(url)[0] == 200)
    assert http_json(url + "admin/fault")[1]["held_connections"] == 2, "the leak is still there"
    _write(config, {"currency": "EUR", "tax_rate": 0.2, "pool_size": 2})
    assert wait_until(lambda: http_json(url)[0] == 503)
    assert http_json(url + "admin/fault", {}) == (200, {
        "latency_ms": 0.0, "error_rate": 0.0, "leak_per_s": 0.0, "held_connections": 0})
    assert http_json(url)[0] == 200, "clearing the fault gives the connections back"


def test_bad_held_connections_are_refused_naming_the_field(inventory: tuple[str, Path]) -> None:
    url, _ = inventory
    for body, reason in [
        ({"held_connections": -1}, "held_connections"), ({"held_connections": 257}, "held_"),
        ({"held_connections": 1.5}, "integer"), ({"held_connections": "all"}, "number"),
        ({"held_connections": True}, "number"),
    ]:
        status, answer = http_json(url + "admin/fault", body)
        assert status == 400 and reason in answer["error"], body
    assert http_json(url + "admin/fault")[1]["held_connections"] == 0
