"""The OTLP/HTTP receiver on a real uvicorn server, fed by the official OTel SDK exporters."""

from __future__ import annotations

import gzip
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from api.routers.otlp import router
from selfheal_kg.clock import FakeClock
from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor.intake import Intake
from selfheal_kg.monitor.logs import LogRates
from selfheal_kg.monitor.otlp import parse
from selfheal_kg.monitor.series import SeriesStore
from selfheal_kg.monitor.spans import SpanGraph

PB = {"content-type": "application/x-protobuf"}
JS = {"content-type": "application/json"}
CAP = 1 << 20


@dataclass
class Stack:
    url: str
    clock: FakeClock
    series: SeriesStore
    spans: SpanGraph
    intake: Intake
    recorded: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def drained(self, metric: str) -> list[DerivedPoint]:
        return [p for p in self.series.drain() if p.metric == metric]


@pytest.fixture
def stack() -> Iterator[Stack]:
    clock = FakeClock()
    series = SeriesStore(clock)
    spans = SpanGraph(clock, ttl_seconds=30)
    recorded: list[tuple[str, dict[str, Any]]] = []
    intake = Intake(
        series,
        clock,
        CAP,
        spans=spans,
        logs=LogRates(series),
        recorder=lambda signal, doc: recorded.append((signal, doc)),
        max_in_flight=2,
        retry_after=1,
    )
    app = FastAPI()
    app.include_router(router)
    app.state.runtime = SimpleNamespace(intake=intake)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Stack(f"http://127.0.0.1:{port}", clock, series, spans, intake, recorded)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _meter_provider(stack: Stack, service: str, compression: Compression) -> MeterProvider:
    exporter = OTLPMetricExporter(
        endpoint=f"{stack.url}/v1/metrics", timeout=2, compression=compression
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    return MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": service})
    )


def _point_times(stack: Stack, metric: str) -> list[int]:
    """Return the timeUnixNano of ``metric``'s points in each recorded export."""
    times = []
    for signal, doc in stack.recorded:
        if signal != "metrics":
            continue
        for rm in doc["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    if m["name"] == metric:
                        data = m.get("sum") or m.get("histogram")
                        times.append(int(data["dataPoints"][0]["timeUnixNano"]))
    return times


@pytest.mark.parametrize(
    "compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate]
)
def test_sdk_counter_reaches_the_store_as_a_rate(stack: Stack, compression: Compression) -> None:
    provider = _meter_provider(stack, "checkout", compression)
    counter = provider.get_meter("shop").create_counter("orders", unit="1")
    counter.add(10)
    assert provider.force_flush()
    counter.add(20)
    assert provider.force_flush()
    provider.shutdown()

    t1, t2 = _point_times(stack, "orders")
    [point] = stack.drained("orders.rate")
    assert point.series == "checkout|orders.rate"
    assert point.node == "checkout"
    assert point.t == pytest.approx(t2 / 1e9)
    assert point.value == pytest.approx(20 / ((t2 - t1) / 1e9))
    assert stack.series.last_seen() == {"checkout": stack.clock.now()}


def test_sdk_histogram_gives_rate_error_ratio_mean_and_p95(stack: Stack) -> None:
    provider = _meter_provider(stack, "checkout", Compression.Gzip)
    histogram = provider.get_meter("shop").create_histogram(
        "http.server.request.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=[0.1, 0.5, 1.0],
    )
    ok = {"http.request.method": "GET", "http.response.status_code": 200}
    histogram.record(0.05, ok)
    assert provider.force_flush()  # the baseline
    for value in (0.05, 0.05, 0.05, 0.05, 0.3, 0.3, 0.3, 0.3):
        histogram.record(value, ok)
    # A stream first seen now (the first 5xx) counts in full: its resource exported before.
    failed = {"http.request.method": "GET", "http.response.status_code": 503}
    histogram.record(0.8, failed)
    histogram.record(0.8, failed)
    assert provider.force_flush()
    provider.shutdown()

    t1, t2 = _point_times(stack, "http.server.request.duration")
    points = {p.metric: p.value for p in stack.series.drain()}
    assert points["http.server.request.rate"] == pytest.approx(10 / ((t2 - t1) / 1e9))
    assert points["http.server.error.ratio"] == pytest.approx(0.2)
    assert points["http.server.duration.mean"] == pytest.approx(0.3)
    # 4 in (0, 0.1], 4 in (0.1, 0.5], 2 in (0.5, 1]: rank 9.5 lies 3/4 into the third bucket
    assert points["http.server.duration.p95"] == pytest.approx(0.875)


def test_sdk_spans_become_service_graph_edges(stack: Stack) -> None:
    providers = {}
    with ExitStack() as stop:
        for service in ("frontend", "checkout"):
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            exporter = OTLPSpanExporter(endpoint=f"{stack.url}/v1/traces", timeout=2)
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            stop.callback(provider.shutdown)
            providers[service] = provider.get_tracer("shop")
        front, back = providers["frontend"], providers["checkout"]
        with (
            front.start_as_current_span("GET /buy", kind=SpanKind.SERVER),
            front.start_as_current_span("POST checkout", kind=SpanKind.CLIENT) as client,
        ):
            parent = trace.set_span_in_context(client)
            with back.start_as_current_span("POST /pay", kind=SpanKind.SERVER, context=parent):
                with back.start_as_current_span("price", kind=SpanKind.INTERNAL):
                    pass
                with back.start_as_current_span(
                    "SELECT orders",
                    kind=SpanKind.CLIENT,
                    attributes={"db.system.name": "postgresql", "db.namespace": "orders"},
                ) as db:
                    db.set_status(StatusCode.ERROR)

    stack.spans.expire(stack.clock.now() + 31)
    edges = {(e.caller, e.callee): e for e in stack.spans.edges()}
    assert set(edges) == {("user", "frontend"), ("frontend", "checkout"), ("checkout", "orders")}
    assert edges[("checkout", "orders")].callee_kind == "database"
    assert edges[("checkout", "orders")].errors == 1
    assert edges[("frontend", "checkout")].calls == 1
    assert edges[("frontend", "checkout")].server_latency_sum > 0
    assert stack.spans.internal == 1
    assert set(stack.series.last_seen()) == {"frontend", "checkout"}


def _hex_spans() -> dict[str, Any]:
    trace_id = "5b8efff798038103d269b633813fc60c"
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "eee19b7ec3c1b174",
                                "name": "call",
                                "kind": 3,
                                "startTimeUnixNano": "1000",
                                "endTimeUnixNano": 2000,
                                "attributes": [
                                    {"key": "peer.service", "value": {"stringValue": "auth"}}
                                ],
                                "somethingNew": {"ignored": True},
                            },
                        ]
                    }
                ],
            },
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "eee19b7ec3c1b175",
                                "parentSpanId": "eee19b7ec3c1b174",
                                "name": "serve",
                                "kind": 2,
                                "startTimeUnixNano": "1100",
                                "endTimeUnixNano": "1900",
                                "status": {"code": 2},
                            },
                        ]
                    }
                ],
            },
        ]
    }


def test_json_body_with_hex_ids_pairs_spans_and_is_recorded_as_json(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}/v1/traces", json=_hex_spans())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    [edge] = stack.spans.edges()
    assert (edge.caller, edge.callee, edge.errors) == ("web", "api", 1)
    [(signal, doc)] = stack.recorded
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert signal == "traces"
    assert span["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert span["kind"] == 3


@pytest.mark.parametrize(
    ("headers", "body"),
    [(PB, b"\x0a\xff\xff\xff"), (JS, b'{"resourceMetrics": [{"scopeMetrics": 7}]}')],
)
def test_malformed_body_is_400_with_a_status_and_stores_nothing(
    stack: Stack, headers: dict[str, str], body: bytes
) -> None:
    response = httpx.post(f"{stack.url}/v1/metrics", content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == headers["content-type"]
    if headers is PB:
        status = Status.FromString(response.content)
        message = status.message
    else:
        message = response.json()["message"]
    assert "ExportMetricsServiceRequest" in message
    assert stack.series.nodes() == []
    assert stack.recorded == []


def test_unsupported_content_type_is_415(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url}/v1/logs", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert "text/plain" in response.json()["message"]


def test_gzip_bomb_is_413_without_inflating_it(stack: Stack) -> None:
    bomb = gzip.compress(b"\0" * (64 * CAP), compresslevel=9)
    assert len(bomb) < CAP
    started = time.perf_counter()
    response = httpx.post(
        f"{stack.url}/v1/metrics", content=bomb, headers={**PB, "content-encoding": "gzip"}
    )
    assert response.status_code == 413
    assert time.perf_counter() - started < 2
    assert "cap" in Status.FromString(response.content).message


def test_body_above_the_cap_is_413(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}/v1/metrics", content=b"\0" * (CAP + 1), headers=PB)
    assert response.status_code == 413


def test_saturated_intake_answers_503_with_retry_after(stack: Stack) -> None:
    with stack.intake.admit(), stack.intake.admit():
        response = httpx.post(f"{stack.url}/v1/metrics", content=b"", headers=PB)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert httpx.post(f"{stack.url}/v1/metrics", content=b"", headers=PB).status_code == 200


def test_sdk_exporter_retries_after_503_and_is_counted_once(stack: Stack) -> None:
    provider = _meter_provider(stack, "checkout", Compression.NoCompression)
    counter = provider.get_meter("shop").create_counter("orders")
    counter.add(1)
    assert provider.force_flush()
    counter.add(4)
    release = threading.Event()

    def hold() -> None:
        with stack.intake.admit(), stack.intake.admit():
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.05)
    threading.Timer(0.3, release.set).start()
    assert provider.force_flush()  # refused with 503, then retried after Retry-After
    holder.join()
    provider.shutdown()
    [point] = stack.drained("orders.rate")
    t1, t2 = _point_times(stack, "orders")
    assert point.value == pytest.approx(4 / ((t2 - t1) / 1e9))


def _metrics_json(t: int, value: int, *, bad: bool = False) -> dict[str, Any]:
    hist_point = {
        "startTimeUnixNano": "1",
        "timeUnixNano": str(t),
        "count": "3",
        "explicitBounds": [1.0, 2.0],
        "bucketCounts": ["1", "1"] if bad else ["1", "1", "1"],
    }
    return {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "db"}}]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "jobs",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "startTimeUnixNano": "1",
                                            "timeUnixNano": str(t),
                                            "asInt": str(value),
                                        }
                                    ],
                                },
                            },
                            {
                                "name": "latency",
                                "unit": "s",
                                "histogram": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [hist_point],
                                },
                            },
                        ]
                    }
                ],
            }
        ]
    }


def test_partial_success_counts_rejected_points(stack: Stack) -> None:
    response = httpx.post(f"{stack.url}/v1/metrics", json=_metrics_json(10**9, 5, bad=True))
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1"
    assert "bucket_counts" in partial["errorMessage"]

    body = json.dumps(_metrics_json(2 * 10**9, 5, bad=True)).encode()
    as_pb = httpx.post(
        f"{stack.url}/v1/metrics",
        content=gzip.compress(_to_protobuf(body)),
        headers={**PB, "content-encoding": "gzip"},
    )
    response_pb = ExportMetricsServiceResponse.FromString(as_pb.content)
    assert response_pb.partial_success.rejected_data_points == 1


def _to_protobuf(json_body: bytes) -> bytes:
    request = parse("metrics", json_body, "json")
    assert isinstance(request, ExportMetricsServiceRequest)
    return request.SerializeToString()


def test_duplicate_delivery_is_not_double_counted(stack: Stack) -> None:
    first = httpx.post(f"{stack.url}/v1/metrics", json=_metrics_json(10 * 10**9, 10))
    assert first.status_code == 200
    for _ in range(3):  # a client retrying an export whose answer it lost
        again = httpx.post(f"{stack.url}/v1/metrics", json=_metrics_json(20 * 10**9, 30))
        assert again.status_code == 200
        assert again.json() == {}
    [point] = stack.drained("jobs.rate")
    assert point.value == pytest.approx(2.0)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_log_exporter_reaches_the_log_rates(stack: Stack, compression: Compression) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": "cart"}))
    exporter = OTLPLogExporter(endpoint=f"{stack.url}/v1/logs", timeout=2, compression=compression)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("test")
    try:
        for i in range(3):
            logger.emit(
                timestamp=int((1_700_000_000 + i) * 1e9),
                severity_number=SeverityNumber.ERROR,
                body=f"payment refused for order {i}",
            )
        logger.emit(
            timestamp=int(1_700_000_005 * 1e9), severity_number=SeverityNumber.INFO, body="ok"
        )
    finally:
        provider.shutdown()
    assert "cart" in stack.series.last_seen()
    assert [s for s, _ in stack.recorded].count("logs") == 4
