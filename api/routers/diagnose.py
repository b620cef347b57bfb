"""POST /diagnose: what is wrong now (or in a window), ranked, explained and recorded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from api.deps import require_token, runtime
from selfheal_kg.diagnose import Window, diagnose

router = APIRouter(tags=["diagnosis"])


class DiagnoseRequest(BaseModel):
    """An optional window (epoch seconds) and the node where the problem was noticed."""

    start: float | None = Field(None, description="only signals with onset at or after this")
    end: float | None = Field(None, description="only signals with onset at or before this")
    target: str | None = Field(None, max_length=256, description="node where it was noticed")
    top: int = Field(5, ge=1, le=50)

    @model_validator(mode="after")
    def _ordered(self) -> DiagnoseRequest:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self


@router.post("/diagnose", dependencies=[Depends(require_token)])
async def post_diagnose(request: Request, body: DiagnoseRequest) -> dict[str, Any]:
    """Rank root causes with explanations, matched patterns and candidate playbooks."""
    rt = runtime(request)
    window = None if body.start is None and body.end is None else Window(body.start, body.end)
    return await run_in_threadpool(
        lambda: diagnose(
            rt.pipeline, rt.book.recorder, rt.clock, target=body.target, window=window,
            top=body.top,
        )
    )
