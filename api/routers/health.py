"""GET /healthz: is the server up, and how much does it hold."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import runtime

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(request: Request) -> dict[str, Any]:
    """Return liveness and a few counts."""
    rt = runtime(request)
    return {"status": "ok", **rt.stats()}
