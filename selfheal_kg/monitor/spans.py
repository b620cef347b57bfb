"""Service graph from spans, as the Collector's servicegraph connector and Tempo build it.

A CLIENT/PRODUCER span (trace id + its span id) pairs with the SERVER/CONSUMER span whose
parent is that span, in another service: an edge caller → callee with both latencies, failed
if either side is ERROR. A SERVER span whose parent is any span of another service (no client
instrumentation there) gives the same edge. A CLIENT span still unpaired after the TTL calls
something uninstrumented: a virtual node named from its attributes. A root SERVER span is
called by ``user``. INTERNAL spans and self-edges make no edge. Span kinds and status codes
use OTLP's numbering: https://opentelemetry.io/docs/specs/otel/trace/api/#spankind
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Final, Literal, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from selfheal_kg.clock import Clock
from selfheal_kg.monitor.attributes import AttrValue, attributes, lookup, node_of
from selfheal_kg.monitor.series import IngestStats

CalleeKind = Literal["service", "database", "queue", "external"]
USER: Final = "user"

_CALLERS: Final = frozenset({Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_PRODUCER})
_CALLEES: Final = frozenset({Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CONSUMER})
_NS: Final = 1e9
_EXPIRE_EVERY: Final = 1.0
# OpenTelemetry's default explicit bucket bounds, in seconds
LATENCY_BOUNDS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Edge:
    """Calls seen from ``caller`` to ``callee``.

    Attributes:
        first_seen, last_seen: when the first and latest call was received (intake clock).
        calls, errors: number of calls, and of calls with an ERROR status on either side.
        latency_sum: seconds summed as the caller saw them (the server's when no client span).
        server_latency_sum: seconds summed on the server side, for paired calls.
        buckets: caller-side latency histogram over ``LATENCY_BOUNDS`` (one more bucket than
            bounds: the last is above the largest bound), cumulative since first seen.
    """

    caller: str
    callee: str
    callee_kind: CalleeKind
    first_seen: float
    last_seen: float
    calls: int
    errors: int
    latency_sum: float
    server_latency_sum: float = 0.0
    buckets: tuple[int, ...] = ()


@dataclass(slots=True)
class _Pending:
    """What pairing keeps of one span."""

    service: str
    kind: int
    seconds: float
    error: bool
    received: float
    peer: tuple[str, CalleeKind] | None = None
    nested: bool = False  # a client span whose work another client span of its service did


class SpanGraph:
    """Pairs spans into service-graph edges; bounded, thread-safe.

    Args:
        clock: source of "now" for expiring unpaired spans during ingestion.
        ttl_seconds: how long a span waits for its other side.
        max_pending: spans waiting at once (per store); the oldest are dropped beyond.
    """

    def __init__(self, clock: Clock, ttl_seconds: float = 30.0, max_pending: int = 100_000) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[bytes, bytes], _Pending] = OrderedDict()
        self._servers: OrderedDict[tuple[bytes, bytes], _Pending] = OrderedDict()
        self._owners: OrderedDict[tuple[bytes, bytes], tuple[str, float]] = OrderedDict()
        self._edges: dict[tuple[str, str], Edge] = {}
        self._last_expiry = 0.0
        self.paired = 0
        self.unpaired = 0
        self.dropped = 0
        self.internal = 0
        self.self_edges = 0

    def ingest_traces(self, request: ExportTraceServiceRequest, received_at: float) -> IngestStats:
        """Pair the spans of one export; return counts (spans with bad ids are rejected)."""
        accepted = rejected = duplicates = 0
        reasons: dict[str, None] = {}
        with self._lock:
            for rs in request.resource_spans:
                service = node_of(attributes(rs.resource.attributes))
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        reason = _id_problem(span)
                        if reason is None:
                            accepted += 1
                            duplicates += not self._span(service, span, received_at)
                        else:
                            rejected += 1
                            reasons[reason] = None
            if received_at - self._last_expiry >= _EXPIRE_EVERY:
                self._expire(min(received_at, self._clock.now()))
        return IngestStats(accepted, rejected, duplicates, "; ".join(reasons))

    def edges(self) -> list[Edge]:
        """Return the edges seen so far."""
        with self._lock:
            return list(self._edges.values())

    def expire(self, now: float) -> None:
        """Settle the spans that waited longer than the TTL (virtual nodes, fallbacks)."""
        with self._lock:
            self._expire(now)

    def pending(self) -> int:
        """Return the number of spans waiting for their other side."""
        with self._lock:
            return len(self._clients) + len(self._servers)

    def _span(self, service: str, span: Span, received: float) -> bool:
        """Take one span; return ``False`` for a span already seen (a retried export)."""
        trace, own, parent = span.trace_id, span.span_id, span.parent_span_id
        if (trace, own) in self._owners:
            return False
        kind = span.kind
        pending = _Pending(
            service, kind, _seconds(span), span.status.code == Status.STATUS_CODE_ERROR, received
        )
        self._bounded_put(self._owners, (trace, own), (service, received))
        waiting = self._servers.pop((trace, own), None)
        if kind in _CALLERS:
            outer = self._clients.get((trace, parent)) if parent else None
            if outer is not None and outer.service == service:
                outer.nested = True
            if waiting is not None:
                self._pair(pending, waiting)
            else:
                pending.peer = _peer(attributes(span.attributes))
                self.dropped += self._bounded_put(self._clients, (trace, own), pending)
        elif waiting is not None:
            # A server span whose parent is an INTERNAL or SERVER span: no client span there.
            self._record(service, waiting.service, "service", waiting, None)
        if kind in _CALLEES:
            self._server(trace, parent, pending)
        elif kind not in _CALLERS:
            self.internal += 1
        return True

    def _server(self, trace: bytes, parent: bytes, pending: _Pending) -> None:
        if not parent:
            if pending.kind == Span.SPAN_KIND_SERVER:
                self._record(USER, pending.service, "service", pending, None)
            return
        client = self._clients.pop((trace, parent), None)
        if client is not None:
            self._pair(client, pending)
            return
        owner = self._owners.get((trace, parent))
        if owner is not None and owner[0] != pending.service:
            self._record(owner[0], pending.service, "service", pending, None)
            return
        self.dropped += self._bounded_put(self._servers, (trace, parent), pending)

    def _pair(self, client: _Pending, server: _Pending) -> None:
        self.paired += 1
        self._record(client.service, server.service, "service", client, server)

    def _record(
        self, caller: str, callee: str, kind: CalleeKind, first: _Pending, server: _Pending | None
    ) -> None:
        if caller == callee:
            self.self_edges += 1
            return
        error = first.error or (server is not None and server.error)
        received = max(first.received, server.received if server else 0.0)
        server_seconds = server.seconds if server else 0.0
        edge = self._edges.get((caller, callee))
        if edge is None:
            edge = Edge(caller, callee, kind, received, received, 0, 0, 0.0)
        self._edges[(caller, callee)] = replace(
            edge,
            first_seen=min(edge.first_seen, received),
            last_seen=max(edge.last_seen, received),
            calls=edge.calls + 1,
            errors=edge.errors + int(error),
            latency_sum=edge.latency_sum + first.seconds,
            server_latency_sum=edge.server_latency_sum + server_seconds,
            buckets=_bucketed(edge.buckets, first.seconds),
        )

    def _expire(self, now: float) -> None:
        self._last_expiry = now
        horizon = now - self._ttl
        for _, client in _pop_older(self._clients, horizon):
            if client.nested:
                continue
            if client.peer is None:
                self.unpaired += 1
            else:
                self._record(client.service, client.peer[0], client.peer[1], client, None)
        for (trace, parent), server in _pop_older(self._servers, horizon):
            owner = self._owners.get((trace, parent))
            if owner is not None and owner[0] != server.service:
                self._record(owner[0], server.service, "service", server, None)
            else:
                self.unpaired += 1
        while self._owners and next(iter(self._owners.values()))[1] < horizon:
            self._owners.popitem(last=False)

    def _bounded_put(self, store: OrderedDict[_K, _V], key: _K, value: _V) -> bool:
        """Insert, evicting the oldest entry beyond the bound; return whether one was."""
        store[key] = value
        if len(store) <= self._max_pending:
            return False
        store.popitem(last=False)
        return True


def _pop_older(
    store: OrderedDict[tuple[bytes, bytes], _Pending], horizon: float
) -> list[tuple[tuple[bytes, bytes], _Pending]]:
    """Remove and return the entries received before ``horizon`` (they are in arrival order)."""
    out = []
    while store:
        key, item = next(iter(store.items()))
        if item.received >= horizon:
            break
        store.popitem(last=False)
        out.append((key, item))
    return out


def _id_problem(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "trace_id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "span_id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "parent_span_id must be empty or 8 bytes"
    return None


def _bucketed(buckets: tuple[int, ...], seconds: float) -> tuple[int, ...]:
    counts = list(buckets) or [0] * (len(LATENCY_BOUNDS) + 1)
    counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
    return tuple(counts)


def _seconds(span: Span) -> float:
    return max(span.end_time_unix_nano - span.start_time_unix_nano, 0) / _NS


def _peer(attrs: dict[str, AttrValue]) -> tuple[str, CalleeKind] | None:
    """Name and kind of what an unpaired client span called (virtual node), if it says."""
    db = _text(lookup(attrs, "db.system.name"))
    messaging = _text(attrs.get("messaging.system"))
    kind: CalleeKind = "database" if db else "queue" if messaging else "service"
    named = _text(lookup(attrs, "service.peer.name"))
    if named:
        return named, kind
    if db:
        return _text(lookup(attrs, "db.namespace")) or db, kind
    if messaging:
        return _text(attrs.get("messaging.destination.name")) or messaging, kind
    address = _text(lookup(attrs, "server.address"))
    if address:
        port = _text(lookup(attrs, "server.port"))
        return (f"{address}:{port}" if port else address), "external"
    return None


def _text(value: AttrValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
