"""Span pairing into service-graph edges: pairs, fallbacks, virtual nodes, bounds."""

from __future__ import annotations

import itertools

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from selfheal_kg.clock import FakeClock
from selfheal_kg.monitor.spans import Edge, SpanGraph

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = 2, 3, 4, 5, 1
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
_ids = itertools.count(1)


def _id() -> bytes:
    return next(_ids).to_bytes(8, "big")


def _span(
    kind: int,
    span_id: bytes,
    parent: bytes = b"",
    *,
    error: bool = False,
    seconds: float = 0.5,
    trace: bytes = TRACE,
    **attrs: str | int,
) -> Span:
    span = Span(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        kind=kind,
        name="op",
        start_time_unix_nano=10**9,
        end_time_unix_nano=10**9 + int(seconds * 10**9),
    )
    if error:
        span.status.code = Status.STATUS_CODE_ERROR
    for key, value in attrs.items():
        v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
        span.attributes.append(KeyValue(key=key, value=v))
    return span


def _request(service: str, *spans: Span) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    rs.scope_spans.add().spans.extend(spans)
    return request


@pytest.fixture
def graph() -> SpanGraph:
    return SpanGraph(FakeClock(), ttl_seconds=30)


def _edges(graph: SpanGraph) -> dict[tuple[str, str], Edge]:
    return {(e.caller, e.callee): e for e in graph.edges()}


@pytest.mark.parametrize("client_first", [True, False])
def test_client_and_server_pair_in_either_order(graph: SpanGraph, client_first: bool) -> None:
    c = _id()
    client = _request("web", _span(CLIENT, c, seconds=0.3))
    server = _request("api", _span(SERVER, _id(), c, error=True, seconds=0.2))
    for request in (client, server) if client_first else (server, client):
        graph.ingest_traces(request, 5.0)
    edge = _edges(graph)[("web", "api")]
    assert (edge.calls, edge.errors, edge.callee_kind) == (1, 1, "service")
    assert edge.latency_sum == pytest.approx(0.3)
    assert edge.server_latency_sum == pytest.approx(0.2)
    assert (edge.first_seen, edge.last_seen) == (5.0, 5.0)
    assert graph.pending() == 0
    assert graph.paired == 1


def test_producer_and_consumer_pair(graph: SpanGraph) -> None:
    p = _id()
    graph.ingest_traces(_request("orders", _span(PRODUCER, p)), 1.0)
    graph.ingest_traces(_request("mailer", _span(CONSUMER, _id(), p)), 2.0)
    assert set(_edges(graph)) == {("orders", "mailer")}


def test_server_whose_parent_is_another_services_internal_span(graph: SpanGraph) -> None:
    internal = _id()
    graph.ingest_traces(_request("web", _span(INTERNAL, internal)), 1.0)
    graph.ingest_traces(_request("api", _span(SERVER, _id(), internal)), 1.0)
    assert set(_edges(graph)) == {("web", "api")}
    assert graph.internal == 1


def test_fallback_also_when_the_parent_arrives_later(graph: SpanGraph) -> None:
    internal = _id()
    graph.ingest_traces(_request("api", _span(SERVER, _id(), internal)), 1.0)
    graph.ingest_traces(_request("web", _span(SERVER, internal)), 1.0)
    assert set(_edges(graph)) == {("web", "api"), ("user", "web")}


def test_root_server_span_is_called_by_user(graph: SpanGraph) -> None:
    graph.ingest_traces(_request("web", _span(SERVER, _id()), _span(SERVER, _id())), 1.0)
    assert _edges(graph)[("user", "web")].calls == 2


@pytest.mark.parametrize(
    ("attrs", "callee", "kind"),
    [
        ({"db.system.name": "postgresql", "db.namespace": "orders"}, "orders", "database"),
        ({"db.system": "redis"}, "redis", "database"),
        (
            {"db.system.name": "sqlite", "service.peer.name": "inventory-db"},
            "inventory-db",
            "database",
        ),
        ({"messaging.system": "kafka", "messaging.destination.name": "jobs"}, "jobs", "queue"),
        ({"peer.service": "payments"}, "payments", "service"),
        (
            {"server.address": "api.example.com", "server.port": 443},
            "api.example.com:443",
            "external",
        ),
        ({"net.peer.name": "legacy.local"}, "legacy.local", "external"),
    ],
)
def test_unpaired_client_becomes_a_virtual_node_after_the_ttl(
    graph: SpanGraph, attrs: dict[str, str | int], callee: str, kind: str
) -> None:
    graph.ingest_traces(_request("web", _span(CLIENT, _id(), **attrs)), 1.0)
    assert graph.edges() == []
    graph.expire(20.0)
    assert graph.edges() == []
    graph.expire(40.0)
    edge = _edges(graph)[("web", callee)]
    assert edge.callee_kind == kind
    assert graph.pending() == 0


def test_unpaired_spans_without_clues_are_counted(graph: SpanGraph) -> None:
    graph.ingest_traces(_request("web", _span(CLIENT, _id()), _span(SERVER, _id(), _id())), 1.0)
    graph.expire(40.0)
    assert graph.edges() == []
    assert graph.unpaired == 2


def test_nested_client_spans_make_no_spurious_virtual_node(graph: SpanGraph) -> None:
    outer, inner = _id(), _id()
    graph.ingest_traces(
        _request(
            "web",
            _span(CLIENT, outer, **{"server.address": "api"}),
            _span(CLIENT, inner, outer, **{"server.address": "api"}),
        ),
        1.0,
    )
    graph.ingest_traces(_request("api", _span(SERVER, _id(), inner)), 1.0)
    graph.expire(40.0)
    assert set(_edges(graph)) == {("web", "api")}


def test_self_edges_and_internal_spans_make_no_edge(graph: SpanGraph) -> None:
    c = _id()
    graph.ingest_traces(
        _request("web", _span(CLIENT, c), _span(SERVER, _id(), c), _span(INTERNAL, _id())), 1.0
    )
    assert graph.edges() == []
    assert (graph.self_edges, graph.internal) == (1, 1)


def test_spans_with_bad_ids_are_rejected(graph: SpanGraph) -> None:
    stats = graph.ingest_traces(
        _request(
            "web",
            _span(SERVER, b"\x01" * 4),
            _span(SERVER, _id(), trace=b"\0" * 16),
            _span(SERVER, _id(), b"\x01"),
            _span(SERVER, _id()),
        ),
        1.0,
    )
    assert (stats.accepted, stats.rejected) == (1, 3)
    assert "span_id" in stats.message


def test_pending_spans_are_bounded() -> None:
    graph = SpanGraph(FakeClock(), ttl_seconds=30, max_pending=10)
    graph.ingest_traces(_request("web", *(_span(CLIENT, _id()) for _ in range(25))), 1.0)
    assert graph.pending() == 10
    assert graph.dropped >= 15


def test_ingestion_expires_old_spans_by_itself() -> None:
    clock = FakeClock(start=1000.0)
    graph = SpanGraph(clock, ttl_seconds=30)
    graph.ingest_traces(_request("web", _span(CLIENT, _id(), **{"peer.service": "auth"})), 1000.0)
    clock.advance(60)
    graph.ingest_traces(_request("web", _span(SERVER, _id())), clock.now())
    assert set(_edges(graph)) == {("web", "auth"), ("user", "web")}


def test_redelivered_spans_are_not_counted_twice(graph: SpanGraph) -> None:
    c = _id()
    client = _request("web", _span(CLIENT, c))
    server = _request("api", _span(SERVER, _id(), c))
    for request in (client, server, client, server):
        stats = graph.ingest_traces(request, 1.0)
    assert (stats.accepted, stats.duplicates) == (1, 1)
    assert _edges(graph)[("web", "api")].calls == 1
    assert graph.pending() == 0
