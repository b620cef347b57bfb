"""Alerts: Alertmanager webhook intake, the alert view, and silences.

``POST /alertmanager`` takes a webhook v4 payload
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config) and hands its
signals to ``runtime.external_signals``. ``GET /alerts`` shows the alerts of ``runtime.alerts``
with their group, inhibition and silences; ``/silences`` lists, adds and expires silences in
the Alertmanager API v2 shape. Mutating calls need the bearer token (``require_token``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import require_token
from selfheal_kg.errors import PayloadTooLarge
from selfheal_kg.monitor import alertmanager
from selfheal_kg.monitor.silences import Matcher, MatchOp, Silence

if TYPE_CHECKING:
    from selfheal_kg.monitor.alerts import AlertManager

router = APIRouter(tags=["alerts"])

MAX_BODY: Final = 1 << 20  # a webhook call of 5,000 alerts stays well below 1 MiB


class MatcherIn(BaseModel):
    """A label matcher as Alertmanager's API v2 writes it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    value: str = Field(max_length=1024)
    is_regex: bool = Field(False, alias="isRegex")
    is_equal: bool = Field(True, alias="isEqual")

    def to_matcher(self) -> Matcher:
        """Return the matcher (raises ``ConfigError`` for a bad name or regex)."""
        ops: dict[tuple[bool, bool], MatchOp] = {
            (False, True): "=",
            (False, False): "!=",
            (True, True): "=~",
            (True, False): "!~",
        }
        return Matcher(self.name, self.value, ops[(self.is_regex, self.is_equal)])


class SilenceIn(BaseModel):
    """A new silence; times are RFC 3339 or epoch seconds, ``startsAt`` defaults to now."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    matchers: list[MatcherIn] = Field(max_length=64)
    starts_at: datetime | None = Field(None, alias="startsAt")
    ends_at: datetime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy", max_length=256)
    comment: str = Field("", max_length=4096)


def _manager(request: Request) -> AlertManager:
    mgr: AlertManager = request.app.state.runtime.alerts
    return mgr


def _epoch(t: datetime) -> float:
    # a time without a zone is read as UTC, as every time in selfheal-kg is
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _silence_json(s: Silence, now: float) -> dict[str, Any]:
    return {
        "id": s.id,
        "matchers": [m.as_dict() for m in s.matchers],
        "startsAt": s.starts,
        "endsAt": s.ends,
        "createdBy": s.created_by,
        "comment": s.comment,
        "status": {"state": s.state(now)},
    }


@router.post("/alertmanager", dependencies=[Depends(require_token)])
async def alertmanager_webhook(request: Request) -> dict[str, Any]:
    """Receive an Alertmanager webhook (v4); firing alerts become signals, resolved ones clear."""
    body = await _read_body(request)
    rt = request.app.state.runtime
    batch = alertmanager.parse_body(body, rt.clock.now())
    await run_in_threadpool(rt.external_signals, list(batch.signals))
    return {
        "groupKey": batch.group_key,
        "firing": len(batch.firing),
        "resolved": len(batch.resolutions),
    }


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(f"body of {declared} bytes is above the {MAX_BODY}-byte cap")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"body is above the {MAX_BODY}-byte cap")
    return bytes(body)


@router.get("/alerts")
def list_alerts(request: Request) -> dict[str, Any]:
    """List alerts with their group, root, and inhibited / silenced flags; and the groups."""
    groups = _manager(request).groups()
    alerts = [{**a.as_dict(), "group": g.id, "root": g.root} for g in groups for a in g.alerts]
    return {
        "alerts": alerts,
        "groups": [
            {
                "id": g.id,
                "root": g.root,
                "status": g.status,
                "firstUpdate": g.first_update,
                "lastUpdate": g.last_update,
                "alerts": [a.fingerprint for a in g.alerts],
            }
            for g in groups
        ],
    }


@router.get("/silences")
def list_silences(request: Request) -> dict[str, Any]:
    """List every silence with its state (pending, active, expired)."""
    mgr = _manager(request)
    now = mgr.clock.now()
    return {"silences": [_silence_json(s, now) for s in mgr.silences()]}


@router.post("/silences", dependencies=[Depends(require_token)])
def add_silence(request: Request, body: SilenceIn) -> dict[str, Any]:
    """Add a silence; a refused one answers 400 with the reason."""
    mgr = _manager(request)
    starts = _epoch(body.starts_at) if body.starts_at else mgr.clock.now()
    sid = mgr.add_silence(
        [m.to_matcher() for m in body.matchers],
        starts,
        _epoch(body.ends_at),
        body.created_by,
        body.comment,
    )
    return {"silenceID": sid}


@router.delete("/silences/{silence_id}", dependencies=[Depends(require_token)])
def expire_silence(request: Request, silence_id: str) -> dict[str, Any]:
    """Expire a silence now; 404 for an unknown id."""
    mgr = _manager(request)
    s = mgr.expire(silence_id)
    return {"silence": _silence_json(s, mgr.clock.now())}
