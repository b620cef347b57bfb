"""Learning: the effectiveness report, learnt patterns, and human feedback on incidents.

GET  /reports/effectiveness          the report of ``selfheal report`` as JSON
GET  /patterns?status=draft          patterns of the knowledge graph (learnt ones with support)
POST /patterns/propose               cluster new unmatched resolved incidents into drafts
POST /patterns/{id}/promote          SHACL-check a draft and make it active (who, when)
GET  /patterns/{id}/export           the pattern as Turtle, in the format of patterns.ttl
POST /incidents/{id}/resolution      a human records the fix (feeds pattern learning)
POST /incidents/{id}/false-positive  a human confirms noise (raises the series' fire levels)
GET  /thresholds                     per-series fire levels and their adjustments
POST /thresholds/{id}/revert         undo one adjustment
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import require_token, runtime
from selfheal_kg.errors import NotFound
from selfheal_kg.learn import patterns, report
from selfheal_kg.learn.thresholds import ThresholdTuner

router = APIRouter(tags=["learning"])

ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._@ -]{0,127}$"


class Resolution(BaseModel):
    """What a human found and did."""

    root_cause_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")
    playbook: str | None = Field(None, max_length=128, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    note: str = Field("", max_length=2000)
    by: str = Field(min_length=1, max_length=128, pattern=NAME)


class FalsePositive(BaseModel):
    """A human's confirmation that an incident was noise."""

    by: str = Field(min_length=1, max_length=128, pattern=NAME)
    note: str = Field("", max_length=2000)


class Approval(BaseModel):
    """Who approves a draft pattern."""

    by: str = Field(min_length=1, max_length=128, pattern=NAME)


def _checked(kind: str, value: str) -> str:
    if not ID_RE.match(value):
        raise NotFound(f"no {kind} {value!r}")
    return value


@router.get("/reports/effectiveness")
async def effectiveness(
    request: Request,
    period: float = Query(86400.0, gt=0, le=366 * 86400, description="period length, seconds"),
    last_n: int = Query(5, ge=1, le=1000, description="recent trials compared with earlier"),
) -> dict[str, Any]:
    """Return the effectiveness report."""
    rt = runtime(request)
    return await run_in_threadpool(
        lambda: report.effectiveness(rt.store, period=period, last_n=last_n)
    )


@router.get("/patterns")
async def list_patterns(
    request: Request,
    status: str | None = Query(None, pattern="^(active|draft)$"),
) -> dict[str, Any]:
    """List the incident patterns, optionally only drafts or only active ones."""
    rt = runtime(request)
    rows = await run_in_threadpool(patterns.list_patterns, rt.store, status)
    return {"patterns": rows}


@router.post("/patterns/propose", dependencies=[Depends(require_token)])
async def propose(request: Request) -> dict[str, Any]:
    """Propose drafts from unmatched resolved incidents; return the new or grown ones."""
    rt = runtime(request)
    drafts = await run_in_threadpool(patterns.propose_drafts, rt.store, rt.clock.now())
    return {"changed": [_draft(d) for d in drafts]}


@router.post("/patterns/{pattern_id}/promote", dependencies=[Depends(require_token)])
async def promote(request: Request, pattern_id: str, body: Approval) -> dict[str, Any]:
    """Make a draft pattern active (422 with the SHACL violations when it is not valid)."""
    rt = runtime(request)
    pid = _checked("pattern", pattern_id)
    d = await run_in_threadpool(patterns.promote, rt.store, pid, body.by, rt.clock.now())
    return _draft(d)


@router.get("/patterns/{pattern_id}/export", response_class=PlainTextResponse)
async def export(request: Request, pattern_id: str) -> PlainTextResponse:
    """Return the pattern as Turtle (save as, or append to, a patterns.ttl file)."""
    rt = runtime(request)
    pid = _checked("pattern", pattern_id)
    text = await run_in_threadpool(patterns.export_pattern, rt.store, pid)
    headers = {"Content-Disposition": f'attachment; filename="{pid}.ttl"'}
    return PlainTextResponse(text, media_type="text/turtle", headers=headers)


@router.post("/incidents/{incident_id}/resolution", dependencies=[Depends(require_token)])
async def resolution(request: Request, incident_id: str, body: Resolution) -> dict[str, Any]:
    """Record how a human resolved the incident, then refresh the draft patterns."""
    rt = runtime(request)
    iid = _checked("incident", incident_id)

    def work() -> list[patterns.Draft]:
        patterns.record_resolution(
            rt.store, iid, root_cause_type=body.root_cause_type, playbook=body.playbook,
            note=body.note, by=body.by, at=rt.clock.now(),
        )
        return patterns.propose_drafts(rt.store, rt.clock.now())

    drafts = await run_in_threadpool(work)
    return {"incident": iid, "status": "resolved", "drafts": [_draft(d) for d in drafts]}


@router.post("/incidents/{incident_id}/false-positive", dependencies=[Depends(require_token)])
async def false_positive(
    request: Request, incident_id: str, body: FalsePositive
) -> dict[str, Any]:
    """Mark the incident as noise and raise the fire levels of its series."""
    rt = runtime(request)
    iid = _checked("incident", incident_id)
    tuner = ThresholdTuner(rt.store, rt.clock)
    adjs = await run_in_threadpool(tuner.confirm_false_positive, iid, body.by, body.note)
    return {"incident": iid, "status": "false-positive",
            "adjustments": [a.as_dict() for a in adjs]}


@router.get("/thresholds")
async def thresholds(request: Request) -> dict[str, Any]:
    """Return the adjusted fire levels and every adjustment."""
    rt = runtime(request)
    tuner = ThresholdTuner(rt.store, rt.clock)
    adjs = await run_in_threadpool(tuner.adjustments)
    levels = await run_in_threadpool(tuner.levels)
    return {"levels": levels, "adjustments": [a.as_dict() for a in adjs]}


@router.post("/thresholds/{adjustment_id}/revert", dependencies=[Depends(require_token)])
async def revert(request: Request, adjustment_id: str) -> dict[str, Any]:
    """Undo one threshold adjustment."""
    rt = runtime(request)
    aid = _checked("threshold adjustment", adjustment_id)
    adj = await run_in_threadpool(ThresholdTuner(rt.store, rt.clock).revert, aid)
    return adj.as_dict()


def _draft(d: patterns.Draft) -> dict[str, Any]:
    return {
        "id": d.id,
        "status": d.status,
        "support": len(d.incidents),
        "learned_from": d.incidents,
        "root_cause_type": d.root_cause_type,
        "playbook": d.playbook,
        "symptoms": sorted(f"{s.metric} {s.direction}" for s in d.symptoms),
    }
