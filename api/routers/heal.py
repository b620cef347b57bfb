"""POST /heal and POST /approvals/{id}: start a repair, or approve a risky one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import require_token, runtime

router = APIRouter(tags=["healing"])


class HealRequest(BaseModel):
    """Heal an open incident; ``dry_run`` records what would happen and executes nothing."""

    incident: str = Field(..., pattern=r"^[A-Za-z0-9._:-]{1,128}$", description="incident id")
    dry_run: bool = Field(False, description="record the steps without executing them")


class ApprovalRequest(BaseModel):
    """Approve the pending repair of an incident."""

    approver: str = Field(..., min_length=1, max_length=128, pattern=r"^[\w.@ -]+$")
    comment: str = Field("", max_length=1000)


@router.post("/heal", dependencies=[Depends(require_token)])
async def heal(request: Request, body: HealRequest) -> dict[str, Any]:
    """Decide (if not yet decided) and run the repair of an open incident."""
    rt = runtime(request)
    inc = await run_in_threadpool(rt.pipeline.heal, body.incident, dry_run=body.dry_run)
    return {"incident": inc.id, "status": inc.status.value, "dry_run": body.dry_run}


@router.post("/approvals/{incident_id}", dependencies=[Depends(require_token)])
async def approve(request: Request, incident_id: str, body: ApprovalRequest) -> dict[str, Any]:
    """Approve a repair that waits for a human; it starts at once."""
    rt = runtime(request)
    inc = await run_in_threadpool(rt.pipeline.approve, incident_id, body.approver)
    return {"incident": inc.id, "status": inc.status.value, "approved_by": body.approver}
