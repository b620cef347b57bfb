"""The OTLP intake: admit, decode, record, ingest, answer.

One call per OTLP/HTTP request (https://opentelemetry.io/docs/specs/otlp/#otlphttp-response).
A bounded number of requests is processed at once; beyond it the caller is told to retry
(``Overloaded``, HTTP 503 with ``Retry-After``) rather than queued without limit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from selfheal_kg.clock import Clock
from selfheal_kg.errors import Overloaded
from selfheal_kg.monitor import otlp
from selfheal_kg.monitor.attributes import attributes, node_of
from selfheal_kg.monitor.otlp import Signal
from selfheal_kg.monitor.series import IngestStats, SeriesStore

Recorder = Callable[[Signal, dict[str, Any]], None]

_log = logging.getLogger(__name__)


class TraceSink(Protocol):
    """What the intake needs of the span pairing."""

    def ingest_traces(
        self, request: ExportTraceServiceRequest, received_at: float
    ) -> IngestStats: ...


class LogSink(Protocol):
    """What the intake needs of the log derivations."""

    def ingest_logs(self, request: ExportLogsServiceRequest, received_at: float) -> IngestStats: ...


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The answer to one export: what was rejected, and the response body to send."""

    rejected: int
    message: str
    body: bytes
    media_type: str
    stats: IngestStats


class Intake:
    """Decodes OTLP requests and hands them to the stores; thread-safe.

    Args:
        series: the series store (metrics; last-seen times of every node).
        clock: stamps each request's arrival.
        max_body_bytes: cap of a body after decompression.
        spans: span pairing for traces (traces only mark their services as seen without it).
        logs: log derivations (likewise).
        recorder: called with each decoded request as OTLP-JSON, for record/replay.
        max_in_flight: requests processed at once before ``Overloaded`` is raised.
        retry_after: seconds a refused client is asked to wait.
    """

    def __init__(
        self,
        series: SeriesStore,
        clock: Clock,
        max_body_bytes: int,
        *,
        spans: TraceSink | None = None,
        logs: LogSink | None = None,
        recorder: Recorder | None = None,
        max_in_flight: int = 8,
        retry_after: float = 1.0,
    ) -> None:
        self.series = series
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.spans = spans
        self.logs = logs
        self.recorder = recorder
        self.retry_after = retry_after
        self._slots = threading.BoundedSemaphore(max_in_flight)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one in-flight slot for the duration of the block.

        Raises:
            Overloaded: every slot is taken.
        """
        if not self._slots.acquire(blocking=False):
            raise Overloaded("too many OTLP requests in progress", retry_after=self.retry_after)
        try:
            yield
        finally:
            self._slots.release()

    def accept(
        self,
        signal: Signal,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
    ) -> ExportResult:
        """Admit, decode and ingest one request body; return the response to send.

        Raises:
            Overloaded: too many requests in progress (HTTP 503, retry later).
            UnsupportedMediaType: content type or encoding not supported (HTTP 415).
            PayloadTooLarge: body above the cap after decompression (HTTP 413).
            TelemetryError: a body that does not decode (HTTP 400); nothing is stored.
        """
        with self.admit():
            return self.process(signal, body, content_type, content_encoding)

    def process(
        self,
        signal: Signal,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
    ) -> ExportResult:
        """Like :meth:`accept`, for a caller that already holds a slot (:meth:`admit`)."""
        encoding = otlp.encoding_of(content_type)
        data = otlp.inflate(body, content_encoding, self.max_body_bytes)
        request = otlp.parse(signal, data, encoding)
        received_at = self.clock.now()
        if self.recorder is not None:
            _record(self.recorder, signal, request)
        stats = self._ingest(request, received_at)
        response = otlp.encode_response(signal, encoding, stats.rejected, stats.message)
        return ExportResult(
            stats.rejected, stats.message, response, otlp.media_type(encoding), stats
        )

    def _ingest(self, request: otlp.ExportRequest, received_at: float) -> IngestStats:
        if isinstance(request, ExportTraceServiceRequest):
            self._touch((rs.resource for rs in request.resource_spans), received_at)
            if self.spans is None:
                return IngestStats(accepted=_span_count(request))
            return self.spans.ingest_traces(request, received_at)
        if isinstance(request, ExportLogsServiceRequest):
            self._touch((rl.resource for rl in request.resource_logs), received_at)
            if self.logs is None:
                return IngestStats(accepted=_log_count(request))
            return self.logs.ingest_logs(request, received_at)
        return self.series.ingest_metrics(request, received_at)

    def _touch(self, resources: Iterable[Resource], received_at: float) -> None:
        for node in {node_of(attributes(r.attributes)) for r in resources}:
            self.series.touch(node, received_at)


def _record(recorder: Recorder, signal: Signal, request: otlp.ExportRequest) -> None:
    try:
        recorder(signal, otlp.to_json_dict(signal, request))
    except Exception:
        # Recording is a side channel: losing it must not lose the telemetry itself.
        _log.exception("recording an OTLP %s request failed", signal)


def _span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def _log_count(request: ExportLogsServiceRequest) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
