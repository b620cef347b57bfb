"""GET /playbooks and GET /playbooks/{id}: the playbooks in force."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from api.deps import runtime
from selfheal_kg.errors import NotFound

router = APIRouter(tags=["playbooks"])


def _public(value: Any) -> Any:
    """Return plain JSON data for a (nested, frozen) playbook value."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _public(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@router.get("/playbooks")
def list_playbooks(request: Request) -> dict[str, Any]:
    """List every loaded playbook."""
    rt = runtime(request)
    ordered = sorted(rt.playbooks.values(), key=lambda p: p.id)
    return {"playbooks": [_public(pb) for pb in ordered]}


@router.get("/playbooks/{playbook_id}")
def get_playbook(request: Request, playbook_id: str) -> Any:
    """Return one playbook."""
    pb = runtime(request).playbooks.get(playbook_id)
    if pb is None:
        raise NotFound(f"no playbook {playbook_id!r}")
    return _public(pb)
