"""FastAPI dependencies: the runtime, and the bearer-token guard for mutating endpoints."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import Request

from selfheal_kg.errors import AuthError

if TYPE_CHECKING:
    from selfheal_kg.runtime import Runtime

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})


def runtime(request: Request) -> Runtime:
    """Return the runtime the app was built with."""
    rt: Runtime = request.app.state.runtime
    return rt


def require_token(request: Request) -> None:
    """Refuse a mutating call without the configured bearer token.

    Without a configured token, only loopback callers may mutate.
    """
    rt = runtime(request)
    token = rt.config.api_token
    if token is None:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK:
            raise AuthError("no API token configured: mutating calls are loopback-only")
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise AuthError("missing or wrong bearer token")
