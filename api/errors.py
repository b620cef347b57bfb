"""The one place that maps selfheal-kg errors to HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from selfheal_kg import errors

STATUS: tuple[tuple[type[errors.SelfHealError], int], ...] = (
    (errors.UnsupportedMediaType, 415),
    (errors.PayloadTooLarge, 413),
    (errors.Overloaded, 503),
    (errors.NotFound, 404),
    (errors.AuthError, 401),
    (errors.FileLoadError, 422),
    (errors.QueryError, 400),
    (errors.TelemetryError, 400),
    (errors.ConfigError, 400),
    (errors.UnsafeParameter, 422),
    (errors.ActionError, 409),
)


def status_for(exc: errors.SelfHealError) -> int:
    """Return the HTTP status for an error (500 for anything unexpected)."""
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.SelfHealError)
    code = status_for(exc)
    headers = {}
    if isinstance(exc, errors.Overloaded):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    body = {"error": type(exc).__name__, "message": str(exc)}
    return JSONResponse(body, status_code=code, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handler on ``app``."""
    app.add_exception_handler(errors.SelfHealError, _handle)
