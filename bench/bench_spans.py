"""OTLP traces intake throughput, in spans/s: decode only, decode + walk, end-to-end.

Usage: .venv/bin/python bench/bench_spans.py [SECONDS_PER_CASE]
One request = 250 traces of 5 spans (root SERVER in web, CLIENT web → api, SERVER in api,
INTERNAL in api, CLIENT api → a database) across two resources, as two SDKs would export
them. "decode + walk" reads every span's ids, kind, status and attributes from Python;
"end-to-end" is ``Intake.accept`` into a ``SpanGraph`` (pairing, virtual nodes, edges).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from selfheal_kg.clock import FakeClock
from selfheal_kg.monitor import otlp
from selfheal_kg.monitor.attributes import attributes
from selfheal_kg.monitor.intake import Intake
from selfheal_kg.monitor.series import SeriesStore
from selfheal_kg.monitor.spans import SpanGraph

TRACES_PER_REQUEST = 250
S = 10**9


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build(batch: int) -> ExportTraceServiceRequest:
    """One export of both services' spans for ``TRACES_PER_REQUEST`` traces."""
    request = ExportTraceServiceRequest()
    web, api = request.resource_spans.add(), request.resource_spans.add()
    web.resource.attributes.append(_kv("service.name", "web"))
    api.resource.attributes.append(_kv("service.name", "api"))
    web_spans, api_spans = web.scope_spans.add().spans, api.scope_spans.add().spans
    db = {"db.system.name": "postgresql", "db.namespace": "orders"}
    for i in range(TRACES_PER_REQUEST):
        n = batch * TRACES_PER_REQUEST + i + 1  # an all-zero trace id is invalid
        trace = n.to_bytes(16, "big")
        ids = [(n * 8 + k).to_bytes(8, "big") for k in range(5)]
        t = (1_700_000_000 + n) * S
        shape: tuple[tuple[Any, int | None, int, dict[str, str]], ...] = (
            (web_spans, None, Span.SPAN_KIND_SERVER, {"http.route": "/buy"}),
            (web_spans, 0, Span.SPAN_KIND_CLIENT, {"server.address": "api"}),
            (api_spans, 1, Span.SPAN_KIND_SERVER, {"http.route": "/pay"}),
            (api_spans, 2, Span.SPAN_KIND_INTERNAL, {}),
            (api_spans, 2, Span.SPAN_KIND_CLIENT, db),
        )
        for k, (spans, parent, kind, attrs) in enumerate(shape):
            span = spans.add(
                trace_id=trace,
                span_id=ids[k],
                parent_span_id=b"" if parent is None else ids[parent],
                kind=kind,
                name=f"op{k}",
                start_time_unix_nano=t,
                end_time_unix_nano=t + (5 - k) * 1_000_000,
            )
            span.attributes.extend(_kv(key, v) for key, v in attrs.items())
    return request


def walk(request: ExportTraceServiceRequest) -> int:
    """Read every span's ids, kind, status and attributes, as any Python ingestion must."""
    acc = 0
    for rs in request.resource_spans:
        attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                acc += len(span.trace_id) + len(span.span_id) + len(span.parent_span_id)
                acc += span.kind + span.status.code + span.end_time_unix_nano
                acc += len(attributes(span.attributes))
    return acc


def timed(label: str, spans_per_call: int, seconds: float, call: Callable[[int], object]) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        call(calls)
        calls += 1
    rate = calls * spans_per_call / elapsed
    print(f"{label:<30} {rate:>12,.0f} spans/s  ({calls} requests in {elapsed:.1f} s)")
    return rate


def main(seconds: float) -> None:
    bodies = [build(b).SerializeToString() for b in range(400)]
    spans = 5 * TRACES_PER_REQUEST
    print(f"{spans} spans per request, {len(bodies[0]):,} bytes protobuf")
    timed(
        "decode only (protobuf)",
        spans,
        seconds,
        lambda i: otlp.parse("traces", bodies[i % 50], "protobuf"),
    )
    timed(
        "decode + walk",
        spans,
        seconds,
        lambda i: walk(otlp.decode("traces", bodies[i % 50], otlp.PROTOBUF, None, 1 << 26)),
    )
    clock = FakeClock()
    graph = SpanGraph(clock, ttl_seconds=30)
    intake = Intake(SeriesStore(clock), clock, 64 << 20, spans=graph)

    def accept(i: int) -> None:
        clock.advance(0.1)
        intake.accept("traces", bodies[i % len(bodies)], otlp.PROTOBUF, None)

    timed("end-to-end Intake.accept", spans, seconds, accept)
    graph.expire(clock.now() + 60)
    edges = {(e.caller, e.callee): e.calls for e in graph.edges()}
    print(f"  edges: {edges}; unpaired {graph.unpaired}, dropped {graph.dropped}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
