"""GET /playbooks and GET /playbooks/{id}: the playbooks in force."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from api.deps import runtime
from selfheal_kg.errors import NotFound

router = APIRouter(tags=["playbooks"])


def _public(pb: Any) -> dict[str, Any]:
    data = asdict(pb)
    data["source"] = str(data.get("source", ""))
    return data


@router.get("/playbooks")
def list_playbooks(request: Request) -> dict[str, Any]:
    """List every loaded playbook."""
    rt = runtime(request)
    return {"playbooks": [_public(pb) for pb in sorted(rt.playbooks.values(), key=lambda p: p.id)]}


@router.get("/playbooks/{playbook_id}")
def get_playbook(request: Request, playbook_id: str) -> dict[str, Any]:
    """Return one playbook."""
    pb = runtime(request).playbooks.get(playbook_id)
    if pb is None:
        raise NotFound(f"no playbook {playbook_id!r}")
    return _public(pb)
