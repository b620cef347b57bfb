"""Telemetry, argument and HTTP helpers shared by the demo shop's service script.

Manual OpenTelemetry instrumentation with the official SDK, exported over OTLP/HTTP protobuf
to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporters append ``/v1/<signal>``).
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.propagate import inject
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
# Semconv advisory buckets for HTTP/DB durations, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
EXPORT_TIMEOUT = 2.0
CALL_TIMEOUT = 1.0
MAX_ADMIN_BODY = 4096
SCOPE = "selfheal-kg.demo.shop"


@dataclass(frozen=True)
class Telemetry:
    """The SDK providers of one service, and the instruments it records."""

    tracer: Tracer
    server_duration: Histogram
    client_duration: Histogram
    db_duration: Histogram
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider

    def meter(self) -> Meter:
        """Return the shop's meter, for instruments created by the parts that own them."""
        return self.meter_provider.get_meter(SCOPE)

    def shutdown(self) -> None:
        """Flush and stop every exporter (on SIGTERM; a SIGKILL loses what is buffered)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()


def setup_telemetry(service: str, instance_id: str, export_interval: float) -> Telemetry:
    """Build tracer, meter and logger providers for ``service``; wire Python logging to OTLP."""
    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "shop",
            "service.instance.id": instance_id,
            "deployment.environment.name": "demo",
        }
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(timeout=EXPORT_TIMEOUT), schedule_delay_millis=500)
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(timeout=EXPORT_TIMEOUT),
        export_interval_millis=export_interval * 1000.0,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(timeout=EXPORT_TIMEOUT), schedule_delay_millis=500)
    )
    _attach_log_handler(logger_provider)
    meter = meter_provider.get_meter(SCOPE)
    return Telemetry(
        tracer=tracer_provider.get_tracer(SCOPE),
        server_duration=_duration(meter, "http.server.request.duration", "HTTP server requests"),
        client_duration=_duration(meter, "http.client.request.duration", "HTTP client requests"),
        db_duration=_duration(meter, "db.client.operation.duration", "Database operations"),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
    )


def _duration(meter: Meter, name: str, description: str) -> Histogram:
    return meter.create_histogram(
        name,
        unit="s",
        description=description,
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )


class OtlpLogHandler(logging.Handler):
    """Send Python log records to an SDK LoggerProvider.

    The SDK's own ``LoggingHandler`` is deprecated in favour of a separate instrumentation
    package; this is the few lines of it the shop needs.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        super().__init__(level=logging.INFO)
        self._provider = provider

    def emit(self, record: logging.LogRecord) -> None:
        """Emit ``record`` as an OTel log record, correlated with the current span."""
        try:
            self._provider.get_logger(record.name).emit(
                timestamp=int(record.created * 1e9),
                context=otel_context.get_current(),
                severity_number=_severity(record.levelno),
                severity_text=record.levelname,
                body=record.getMessage(),
                attributes={"code.function.name": record.funcName},
            )
        except Exception:  # a log handler must never break the request it logs
            self.handleError(record)


def _severity(levelno: int) -> SeverityNumber:
    if levelno >= logging.ERROR:
        return SeverityNumber.ERROR
    if levelno >= logging.WARNING:
        return SeverityNumber.WARN
    if levelno >= logging.INFO:
        return SeverityNumber.INFO
    return SeverityNumber.DEBUG


def _attach_log_handler(provider: LoggerProvider) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(OtlpLogHandler(provider))
    # Keep a plain copy on stderr: the supervisor's log file.
    root.addHandler(logging.StreamHandler())


def parse_calls(text: str) -> dict[str, str]:
    """Parse ``NAME=URL,...`` into ``{name: url}``; raise ``ValueError`` naming the bad item."""
    calls: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not NAME.fullmatch(name):
            raise ValueError(f"--calls item {item!r} is not NAME=URL")
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"--calls item {item!r}: URL must be http://HOST:PORT/...")
        calls[name] = url
    return calls


def carrier(headers: Any) -> dict[str, str]:
    """Return the headers with lower-case names (urllib sends ``Traceparent``)."""
    return {str(k).lower(): str(v) for k, v in headers}


def call(tel: Telemetry, peer: str, url: str) -> str | None:
    """GET ``url`` inside a CLIENT span; return the ``error.type`` on failure, else ``None``."""
    parts = urlsplit(url)
    attrs: dict[str, Any] = {
        "http.request.method": "GET",
        "server.address": parts.hostname or "",
        "server.port": parts.port or 80,
        "service.peer.name": peer,
    }
    start = time.perf_counter()
    with tel.tracer.start_as_current_span(
        "GET", kind=SpanKind.CLIENT, attributes={**attrs, "url.full": url}
    ) as span:
        headers: dict[str, str] = {}
        inject(headers)
        status, error = _fetch(url, headers)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            attrs["http.response.status_code"] = status
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
            span.set_attribute("error.type", error)
            attrs["error.type"] = error
    tel.client_duration.record(time.perf_counter() - start, attrs)
    return error


def _fetch(url: str, headers: dict[str, str]) -> tuple[int | None, str | None]:
    """Return (status code or None, error.type or None) of one GET."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as resp:
            resp.read()
            return int(resp.status), None
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, str(exc.code)
    except urllib.error.URLError as exc:
        reason = exc.reason
        return None, "timeout" if isinstance(reason, TimeoutError) else type(reason).__name__
    except TimeoutError:
        return None, "timeout"
    except OSError as exc:
        return None, type(exc).__name__


def read_json_object(headers: Any, rfile: Any) -> dict[str, Any]:
    """Read an admin request's JSON object body; raise ``ValueError`` naming the problem."""
    length = int(headers.get("Content-Length", "0"))
    if not 0 <= length <= MAX_ADMIN_BODY:
        raise ValueError(f"body must be at most {MAX_ADMIN_BODY} bytes")
    spec = json.loads(rfile.read(length) or b"{}")  # json.JSONDecodeError is a ValueError
    if not isinstance(spec, dict):
        raise ValueError("body must be a JSON object")
    return spec
