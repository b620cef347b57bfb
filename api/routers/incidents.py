"""GET /incidents and GET /incidents/{id}: the incident history, read from the graph."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import runtime
from selfheal_kg.errors import NotFound
from selfheal_kg.kg import records

router = APIRouter(tags=["incidents"])

ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@router.get("/incidents")
async def list_incidents(
    request: Request,
    status: str | None = Query(None, description="only incidents with this status"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """List incidents, newest first."""
    rt = runtime(request)
    rows = await run_in_threadpool(records.list_incidents, rt.store, status, limit)
    return {"incidents": rows}


@router.get("/incidents/{incident_id}")
async def get_incident(request: Request, incident_id: str) -> dict[str, Any]:
    """Return one incident with its full timeline."""
    if not ID_RE.match(incident_id):
        raise NotFound(f"no incident {incident_id!r}")
    rt = runtime(request)
    return await run_in_threadpool(records.incident_detail, rt.store, incident_id)
