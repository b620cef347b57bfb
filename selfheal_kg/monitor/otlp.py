"""Decode and encode OTLP/HTTP bodies: protobuf or OTLP-JSON, plain, gzip or deflate.

Spec: https://opentelemetry.io/docs/specs/otlp/#otlphttp. OTLP-JSON differs from proto3 JSON
in one way that matters here: trace and span ids are hex strings, not base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Final, Literal, overload

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from selfheal_kg.errors import PayloadTooLarge, TelemetryError, UnsupportedMediaType

Signal = Literal["metrics", "traces", "logs"]
Encoding = Literal["protobuf", "json"]
ExportRequest = ExportMetricsServiceRequest | ExportTraceServiceRequest | ExportLogsServiceRequest

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
SIGNALS: Final[tuple[Signal, ...]] = ("metrics", "traces", "logs")

_REQUESTS: Final[dict[Signal, type[ExportRequest]]] = {
    "metrics": ExportMetricsServiceRequest,
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
}
_MEDIA: Final[dict[str, Encoding]] = {
    PROTOBUF: "protobuf",
    "application/protobuf": "protobuf",
    JSON: "json",
}
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
_ID_KEYS: Final = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
# Where ids sit in each request, as a path of list/dict keys (snake_case is accepted too).
_ID_PATHS: Final[dict[Signal, tuple[tuple[str, ...], ...]]] = {
    "traces": (
        ("resourceSpans", "scopeSpans", "spans"),
        ("resourceSpans", "scopeSpans", "spans", "links"),
    ),
    "logs": (("resourceLogs", "scopeLogs", "logRecords"),),
    "metrics": tuple(
        ("resourceMetrics", "scopeMetrics", "metrics", kind, "dataPoints", "exemplars")
        for kind in ("gauge", "sum", "histogram", "exponentialHistogram")
    ),
}
_SNAKE: Final = {
    "resourceSpans": "resource_spans",
    "scopeSpans": "scope_spans",
    "resourceLogs": "resource_logs",
    "scopeLogs": "scope_logs",
    "logRecords": "log_records",
    "resourceMetrics": "resource_metrics",
    "scopeMetrics": "scope_metrics",
    "dataPoints": "data_points",
    "exponentialHistogram": "exponential_histogram",
}


def encoding_of(content_type: str | None) -> Encoding:
    """Return the encoding named by a ``Content-Type`` header.

    Raises:
        UnsupportedMediaType: the type is missing or neither protobuf nor JSON.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        return _MEDIA[media]
    except KeyError:
        shown = repr(content_type) if content_type else "missing"
        raise UnsupportedMediaType(
            f"Content-Type {shown} is not supported: send {PROTOBUF} or {JSON}"
        ) from None


def media_type(encoding: Encoding) -> str:
    """Return the ``Content-Type`` of an encoding."""
    return PROTOBUF if encoding == "protobuf" else JSON


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Decompress ``body``, refusing it as soon as it grows beyond ``limit`` bytes.

    Raises:
        PayloadTooLarge: the (decompressed) body is larger than ``limit``.
        UnsupportedMediaType: an encoding other than gzip, deflate or identity.
        TelemetryError: a corrupt or truncated compressed body.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in {"identity", "none", ""}:
        if len(body) > limit:
            raise PayloadTooLarge(f"body of {len(body)} bytes is above the {limit}-byte cap")
        return body
    if encoding in {"gzip", "x-gzip"}:
        wbits = _GZIP_WBITS
    elif encoding == "deflate":
        # RFC 9110 deflate is zlib-wrapped, but some clients send a raw deflate stream.
        wbits = zlib.MAX_WBITS if _has_zlib_header(body) else -zlib.MAX_WBITS
    else:
        raise UnsupportedMediaType(
            f"Content-Encoding {content_encoding!r} is not supported: use gzip, deflate or none"
        )
    try:
        return _bounded_inflate(body, wbits, limit)
    except zlib.error as exc:
        raise TelemetryError(f"body is not valid {encoding} data: {exc}") from exc


def _has_zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


def _bounded_inflate(data: bytes, wbits: int, limit: int) -> bytes:
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            room = limit + 1 - len(out)
            chunk = inflater.decompress(data, room)
            out += chunk
            if len(out) > limit:
                raise PayloadTooLarge(f"body inflates beyond the {limit}-byte cap")
            data = inflater.unconsumed_tail
            if not data and len(chunk) < room:
                break
        if not inflater.eof:
            raise TelemetryError("compressed body is truncated")
        data = inflater.unused_data
        # gzip allows several members back to back; anything else after the end is junk.
        if wbits != _GZIP_WBITS or not data.strip(b"\0"):
            return bytes(out)


@overload
def decode(
    signal: Literal["metrics"],
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limit: int,
) -> ExportMetricsServiceRequest: ...
@overload
def decode(
    signal: Literal["traces"],
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limit: int,
) -> ExportTraceServiceRequest: ...
@overload
def decode(
    signal: Literal["logs"],
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limit: int,
) -> ExportLogsServiceRequest: ...
@overload
def decode(
    signal: Signal,
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limit: int,
) -> ExportRequest: ...
def decode(
    signal: Signal,
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    limit: int,
) -> ExportRequest:
    """Decode an OTLP/HTTP request body into its ``Export*ServiceRequest``.

    Raises:
        UnsupportedMediaType: unknown content type or encoding (HTTP 415).
        PayloadTooLarge: above ``limit`` bytes after decompression (HTTP 413).
        TelemetryError: a body that does not decode (HTTP 400).
    """
    encoding = encoding_of(content_type)
    return parse(signal, inflate(body, content_encoding, limit), encoding)


def parse(signal: Signal, data: bytes, encoding: Encoding) -> ExportRequest:
    """Parse an uncompressed body (unknown fields are ignored).

    Raises:
        TelemetryError: the body is not a valid request of that signal.
    """
    message = _REQUESTS[signal]()
    name = type(message).__name__
    if encoding == "protobuf":
        try:
            message.ParseFromString(data)
        except DecodeError as exc:
            raise TelemetryError(f"body is not a valid {name} protobuf: {exc}") from exc
        return message
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise TelemetryError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise TelemetryError(f"{name} JSON must be an object")
    _convert_ids(signal, document, _hex_to_base64)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise TelemetryError(f"body is not a valid {name} in OTLP-JSON: {exc}") from exc
    return message


def to_json_dict(signal: Signal, message: Message) -> dict[str, Any]:
    """Return a request as an OTLP-JSON document (hex ids, integer enums, camelCase keys)."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    _convert_ids(signal, document, _base64_to_hex)
    return document


def encode_response(signal: Signal, encoding: Encoding, rejected: int, message: str) -> bytes:
    """Return the ``Export*ServiceResponse`` body, with ``partial_success`` when needed."""
    response: Message
    if signal == "metrics":
        response = ExportMetricsServiceResponse()
        if rejected or message:
            response.partial_success.CopyFrom(
                ExportMetricsPartialSuccess(rejected_data_points=rejected, error_message=message)
            )
    elif signal == "traces":
        response = ExportTraceServiceResponse()
        if rejected or message:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
            )
    else:
        response = ExportLogsServiceResponse()
        if rejected or message:
            response.partial_success.CopyFrom(
                ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=message)
            )
    return _serialize(response, encoding)


def encode_status(encoding: Encoding, code: int, message: str) -> bytes:
    """Return a ``google.rpc.Status`` error body (``code`` is a gRPC status code)."""
    return _serialize(Status(code=code, message=message), encoding)


def _serialize(message: Message, encoding: Encoding) -> bytes:
    if encoding == "protobuf":
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def _hex_to_base64(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        # Not hex: leave it to the proto3 JSON parser, which reads base64 (older clients).
        return value
    return base64.b64encode(raw).decode("ascii")


def _base64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return value


def _convert_ids(signal: Signal, document: dict[str, Any], convert: Callable[[str], str]) -> None:
    for path in _ID_PATHS[signal]:
        for holder in _walk(document, path):
            for key in _ID_KEYS:
                value = holder.get(key)
                if isinstance(value, str):
                    holder[key] = convert(value)


def _walk(node: object, path: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Yield the dicts reached by following ``path`` through nested lists and dicts."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
        return
    if not isinstance(node, dict):
        return
    if not path:
        yield node
        return
    head, rest = path[0], path[1:]
    child = node.get(head)
    if child is None and head in _SNAKE:
        child = node.get(_SNAKE[head])
    if child is not None:
        yield from _walk(child, rest)
