"""OTLP body codec: media types, bounded decompression, OTLP-JSON ids, responses.

Named ``test_otlp_codec`` so as not to clash with ``tests/api/test_otlp.py``.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from selfheal_kg.errors import PayloadTooLarge, TelemetryError, UnsupportedMediaType
from selfheal_kg.monitor import otlp

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


@pytest.mark.parametrize(
    ("header", "encoding"),
    [
        ("application/x-protobuf", "protobuf"),
        ("application/protobuf", "protobuf"),
        ("Application/JSON; charset=utf-8", "json"),
    ],
)
def test_encoding_of_known_types(header: str, encoding: str) -> None:
    assert otlp.encoding_of(header) == encoding


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/grpc"])
def test_other_types_are_unsupported(header: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        otlp.encoding_of(header)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw, without zlib header
        (None, lambda data: data),
        ("identity", lambda data: data),
    ],
)
def test_inflate(encoding: str | None, compress: object) -> None:
    data = b"otlp" * 1000
    assert callable(compress)
    assert otlp.inflate(compress(data), encoding, len(data)) == data


def test_inflate_concatenated_gzip_members() -> None:
    assert otlp.inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 10) == b"abcd"


def test_inflate_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    with pytest.raises(PayloadTooLarge):
        otlp.inflate(bomb, "gzip", 1000)
    with pytest.raises(PayloadTooLarge):
        otlp.inflate(b"x" * 1001, None, 1000)


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b"x" * 100)[:-12]])
def test_inflate_refuses_corrupt_or_truncated(body: bytes) -> None:
    with pytest.raises(TelemetryError):
        otlp.inflate(body, "gzip", 1000)


def test_inflate_refuses_other_encodings() -> None:
    with pytest.raises(UnsupportedMediaType):
        otlp.inflate(b"", "br", 1000)


def _trace_json(trace_id: str = TRACE) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": trace_id,
                                    "spanId": SPAN,
                                    "kind": 2,
                                    "startTimeUnixNano": "1700000000000000000",
                                    "endTimeUnixNano": 1700000000000000001,
                                    "links": [{"traceId": trace_id, "spanId": SPAN}],
                                    "futureField": [1, 2],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()


def test_json_ids_are_hex_and_unknown_fields_ignored() -> None:
    request = otlp.parse("traces", _trace_json(), "json")
    assert isinstance(request, ExportTraceServiceRequest)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == TRACE
    assert span.span_id.hex() == SPAN
    assert span.links[0].trace_id.hex() == TRACE
    assert span.kind == 2
    assert span.end_time_unix_nano == 1700000000000000001


def test_json_with_base64_ids_from_older_clients_still_parses() -> None:
    b64 = base64.b64encode(bytes.fromhex(TRACE)).decode()
    request = otlp.parse("traces", _trace_json(b64), "json")
    assert isinstance(request, ExportTraceServiceRequest)
    assert request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex() == TRACE


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("json", b"{"),
        ("json", b"[]"),
        (
            "json",
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        ),
        ("protobuf", b"\x0a\x05\x01"),
    ],
)
def test_undecodable_bodies_raise_telemetry_error(encoding: otlp.Encoding, body: bytes) -> None:
    with pytest.raises(TelemetryError) as info:
        otlp.parse("traces", body, encoding)
    assert not isinstance(info.value, UnsupportedMediaType | PayloadTooLarge)


def test_to_json_dict_round_trips_with_hex_ids() -> None:
    request = otlp.parse("traces", _trace_json(), "json")
    document = otlp.to_json_dict("traces", request)
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == TRACE
    assert span["links"][0]["spanId"] == SPAN
    assert span["kind"] == 2
    assert otlp.parse("traces", json.dumps(document).encode(), "json") == request


def test_decode_combines_type_encoding_and_parse() -> None:
    body = gzip.compress(_trace_json())
    request = otlp.decode("traces", body, "application/json", "gzip", 1 << 20)
    assert request.resource_spans[0].scope_spans[0].spans[0].span_id.hex() == SPAN


def test_responses_with_and_without_partial_success() -> None:
    assert otlp.encode_response("metrics", "json", 0, "") == b"{}"
    assert otlp.encode_response("traces", "protobuf", 0, "") == b""
    body = json.loads(otlp.encode_response("traces", "json", 2, "bad ids"))
    assert body == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}}
    logs = ExportLogsServiceResponse.FromString(otlp.encode_response("logs", "protobuf", 3, "x"))
    assert logs.partial_success.rejected_log_records == 3


def test_status_bodies() -> None:
    assert json.loads(otlp.encode_status("json", 3, "broken")) == {"code": 3, "message": "broken"}
    status = Status.FromString(otlp.encode_status("protobuf", 14, "busy"))
    assert (status.code, status.message) == (14, "busy")
