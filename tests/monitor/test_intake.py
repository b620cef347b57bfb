"""The intake: admission, decoding, recording, routing to the stores, responses."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from selfheal_kg.clock import FakeClock
from selfheal_kg.errors import Overloaded, PayloadTooLarge, TelemetryError, UnsupportedMediaType
from selfheal_kg.monitor.intake import Intake
from selfheal_kg.monitor.logs import LogRates
from selfheal_kg.monitor.series import SeriesStore
from selfheal_kg.monitor.spans import SpanGraph

PB, JSON = "application/x-protobuf", "application/json"


def _gauge_json(service: str = "shop", t: int = 10**9, *, bad: bool = False) -> bytes:
    point = {"timeUnixNano": str(t), "asDouble": "NaN" if bad else 0.5}
    return json.dumps(
        {
            "resourceMetrics": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeMetrics": [
                        {"metrics": [{"name": "cpu", "gauge": {"dataPoints": [point]}}]}
                    ],
                }
            ]
        }
    ).encode()


def _resource(service: str) -> list[KeyValue]:
    return [KeyValue(key="service.name", value=AnyValue(string_value=service))]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=500.0)


@pytest.fixture
def series(clock: FakeClock) -> SeriesStore:
    return SeriesStore(clock)


def test_metrics_reach_the_store_and_are_recorded(clock: FakeClock, series: SeriesStore) -> None:
    recorded: list[tuple[str, dict[str, Any]]] = []
    intake = Intake(series, clock, 1 << 20, recorder=lambda s, d: recorded.append((s, d)))
    result = intake.accept("metrics", gzip.compress(_gauge_json()), JSON, "gzip")
    assert (result.rejected, result.body, result.media_type) == (0, b"{}", JSON)
    assert [p.series for p in series.drain()] == ["shop|cpu"]
    assert series.last_seen() == {"shop": 500.0}
    [(signal, doc)] = recorded
    assert signal == "metrics"
    assert doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["name"] == "cpu"


def test_rejections_make_a_partial_success(clock: FakeClock, series: SeriesStore) -> None:
    result = Intake(series, clock, 1 << 20).accept("metrics", _gauge_json(bad=True), JSON, None)
    assert result.rejected == 1
    assert json.loads(result.body)["partialSuccess"]["rejectedDataPoints"] == "1"


def test_protobuf_answers_in_protobuf(clock: FakeClock, series: SeriesStore) -> None:
    result = Intake(series, clock, 1 << 20).accept("metrics", b"", PB, None)
    assert result.media_type == PB
    assert ExportMetricsServiceResponse.FromString(result.body) == ExportMetricsServiceResponse()


def test_a_failing_recorder_loses_no_telemetry(clock: FakeClock, series: SeriesStore) -> None:
    def broken(_signal: str, _doc: dict[str, Any]) -> None:
        raise OSError("disk full")

    Intake(series, clock, 1 << 20, recorder=broken).accept("metrics", _gauge_json(), JSON, None)
    assert len(series.drain()) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "error"),
    [
        (b"{}", "text/plain", None, UnsupportedMediaType),
        (b"{}", JSON, "br", UnsupportedMediaType),
        (b"{" * 10, JSON, None, TelemetryError),
        (gzip.compress(b" " * 5000), JSON, "gzip", PayloadTooLarge),
    ],
)
def test_errors(
    clock: FakeClock,
    series: SeriesStore,
    body: bytes,
    content_type: str,
    encoding: str | None,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        Intake(series, clock, 1000).accept("metrics", body, content_type, encoding)
    assert series.nodes() == []


def test_overloaded_beyond_the_in_flight_bound(clock: FakeClock, series: SeriesStore) -> None:
    intake = Intake(series, clock, 1000, max_in_flight=1, retry_after=2.5)
    with intake.admit(), pytest.raises(Overloaded) as info:
        intake.accept("metrics", b"", PB, None)
    assert info.value.retry_after == 2.5
    intake.accept("metrics", b"", PB, None)  # the slot was given back


def test_traces_and_logs_mark_their_services_seen(clock: FakeClock, series: SeriesStore) -> None:
    traces = ExportTraceServiceRequest()
    traces.resource_spans.add().resource.attributes.extend(_resource("web"))
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().resource.attributes.extend(_resource("worker"))
    intake = Intake(series, clock, 1 << 20)
    assert intake.accept("traces", traces.SerializeToString(), PB, None).stats.accepted == 0
    clock.advance(1)
    intake.accept("logs", logs.SerializeToString(), PB, None)
    assert series.last_seen() == {"web": 500.0, "worker": 501.0}


def test_traces_and_logs_go_to_their_sinks(clock: FakeClock, series: SeriesStore) -> None:
    spans = SpanGraph(clock)
    intake = Intake(series, clock, 1 << 20, spans=spans, logs=LogRates(series))
    traces = ExportTraceServiceRequest()
    rs = traces.resource_spans.add()
    rs.resource.attributes.extend(_resource("web"))
    rs.scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8, kind=2)
    intake.accept("traces", traces.SerializeToString(), PB, None)
    assert [(e.caller, e.callee) for e in spans.edges()] == [("user", "web")]
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(severity_number=17)
    assert intake.accept("logs", logs.SerializeToString(), PB, None).stats.accepted == 1
