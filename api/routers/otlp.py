"""POST /v1/metrics, /v1/traces, /v1/logs: the OTLP/HTTP receiver.

Spec: https://opentelemetry.io/docs/specs/otlp/#otlphttp. Errors are answered with a
``google.rpc.Status`` in the request's encoding (JSON when the type itself was refused), with
the status code from :func:`api.errors.status_for`; 503 carries ``Retry-After``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.errors import status_for
from selfheal_kg.errors import Overloaded, PayloadTooLarge, SelfHealError
from selfheal_kg.monitor import otlp

if TYPE_CHECKING:
    from selfheal_kg.monitor.intake import Intake

router = APIRouter(tags=["otlp"])

# gRPC status codes for the google.rpc.Status body, by HTTP status.
_GRPC_CODES: Final = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}
_INTERNAL: Final = 13
_DESCRIPTION: Final = "Body: protobuf or OTLP-JSON, optionally gzip or deflate."


@router.post("/v1/metrics", summary="Receive OTLP metrics", description=_DESCRIPTION)
async def export_metrics(request: Request) -> Response:
    """Receive an ``ExportMetricsServiceRequest``."""
    return await _export(request, "metrics")


@router.post("/v1/traces", summary="Receive OTLP traces", description=_DESCRIPTION)
async def export_traces(request: Request) -> Response:
    """Receive an ``ExportTraceServiceRequest``."""
    return await _export(request, "traces")


@router.post("/v1/logs", summary="Receive OTLP logs", description=_DESCRIPTION)
async def export_logs(request: Request) -> Response:
    """Receive an ``ExportLogsServiceRequest``."""
    return await _export(request, "logs")


async def _export(request: Request, signal: otlp.Signal) -> Response:
    intake: Intake = request.app.state.runtime.intake
    content_type = request.headers.get("content-type")
    content_encoding = request.headers.get("content-encoding")
    try:
        otlp.encoding_of(content_type)  # a 415 needs no body
        # Admission comes before reading the body, so refused requests cost no memory.
        with intake.admit():
            body = await _read_body(request, intake.max_body_bytes)
            result = await run_in_threadpool(
                intake.process, signal, body, content_type, content_encoding
            )
    except SelfHealError as exc:
        return _error(exc, content_type)
    return Response(result.body, media_type=result.media_type)


async def _read_body(request: Request, limit: int) -> bytes:
    """Read the raw body, refusing it once it exceeds ``limit`` (a compressed body too)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is above the {limit}-byte cap")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body is above the {limit}-byte cap")
    return bytes(body)


def _error(exc: SelfHealError, content_type: str | None) -> Response:
    status = status_for(exc)
    try:
        encoding = otlp.encoding_of(content_type)
    except SelfHealError:
        encoding = "json"
    body = otlp.encode_status(encoding, _GRPC_CODES.get(status, _INTERNAL), str(exc))
    headers = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return Response(body, status_code=status, media_type=otlp.media_type(encoding), headers=headers)
