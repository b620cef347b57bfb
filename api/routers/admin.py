"""POST /reload: re-read rules, playbooks and topology; swap only if all are valid."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from api.deps import require_token, runtime

router = APIRouter(tags=["admin"])


@router.post("/reload", dependencies=[Depends(require_token)])
async def reload(request: Request) -> dict[str, Any]:
    """Reload the authored files; on any error the running knowledge stays and 422 says why."""
    rt = runtime(request)
    return await run_in_threadpool(rt.reload)
