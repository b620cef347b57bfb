"""Playbooks as files: YAML → JSON Schema check → typed, frozen ``Playbook`` → RDF triples.

The schema is ``playbook.schema.json`` beside this module (JSON Schema draft 2020-12,
https://json-schema.org/draft/2020-12); the format is described in docs/playbooks.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as JsonSchemaError
from jsonschema.exceptions import ValidationError
from rdflib import RDF, RDFS, XSD, URIRef
from rdflib import Literal as Lit

from selfheal_kg.errors import SchemaError
from selfheal_kg.kg.namespaces import SHK, node_iri
from selfheal_kg.kg.store import Triple

Risk = Literal["low", "medium", "high"]
StepScope = Literal["target", "callers"]
#: in a step's params, this string stands for the incident's target
TARGET_PLACEHOLDER = "${target}"
SCHEMA_PATH = Path(__file__).with_name("playbook.schema.json")
MAX_FILE_BYTES = 1_000_000  # a playbook is a page of YAML; refuse anything that is not


@dataclass(frozen=True, slots=True)
class Step:
    """One action of a playbook (or of its rollback).

    ``acts_on`` says where it acts: the incident's target, or each of the target's callers.
    """

    action: str
    params: Mapping[str, Any]
    timeout_seconds: float
    retries: int
    acts_on: StepScope = "target"


@dataclass(frozen=True, slots=True)
class SuccessCriterion:
    """A condition on a metric that must hold for ``window_seconds`` before ``deadline_seconds``."""

    metric: str
    condition: str
    window_seconds: float
    deadline_seconds: float


@dataclass(frozen=True, slots=True)
class Release:
    """When a temporary repair is undone: its changes are put back once the trigger is gone.

    Once ``metric`` at the target (summed over its instances) has stayed at or below
    ``at_most`` times its level before the incident for ``stable_seconds``, the repair's
    rollback points are restored, newest first (the extra instances of a scale-out are
    retired once the load has fallen). ``undo`` names the actions whose changes are put back
    (empty: every change of the repair).
    """

    metric: str
    at_most: float
    stable_seconds: float
    undo: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Playbook:
    """A repair procedure, as loaded from one YAML file."""

    id: str
    name: str
    handles: tuple[str, ...]
    target_types: tuple[str, ...]
    prerequisites: tuple[str, ...]
    steps: tuple[Step, ...]
    rollback: tuple[Step, ...]
    success: tuple[SuccessCriterion, ...]
    risk: Risk
    cost: float
    requires_approval: bool
    parameters: Mapping[str, Any]
    source: Path
    description: str = ""
    mitigation: bool = False
    requires: tuple[str, ...] = ()
    release: Release | None = None


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def load_playbook(path: Path) -> Playbook:
    """Read, check and type one playbook file.

    Raises:
        SchemaError: YAML that does not parse (with its line) or fails the schema (with the
            playbook id and the JSON path of the offending value).
    """
    data = _read_yaml(path)
    item = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        reason = "; ".join(f"{_json_path(e)}: {e.message}" for e in errors[:5])
        raise SchemaError(str(path), reason, item=item)
    pb = _build(cast(dict[str, Any], data), path)
    _check_params(pb)
    _check_release(pb)
    return pb


def load_playbooks(directory: Path) -> dict[str, Playbook]:
    """Load every ``*.yaml`` / ``*.yml`` playbook of ``directory`` (patterns files excepted).

    Raises:
        SchemaError: on the first bad file, or when two files declare the same id.
    """
    out: dict[str, Playbook] = {}
    for path in playbook_files(directory):
        pb = load_playbook(path)
        if pb.id in out:
            raise SchemaError(
                str(path), f"duplicate playbook id (also in {out[pb.id].source})", item=pb.id
            )
        out[pb.id] = pb
    return out


def playbook_files(directory: Path) -> list[Path]:
    """Return the playbook files of ``directory``, sorted."""
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _read_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SchemaError(str(path), f"file larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(str(path), f"cannot read: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SchemaError(str(path), f"YAML syntax error: {exc.problem}", line=line) from exc
    except yaml.YAMLError as exc:
        raise SchemaError(str(path), f"YAML error: {exc}") from exc


def _json_path(error: ValidationError) -> str:
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _step(raw: Mapping[str, Any]) -> Step:
    return Step(
        action=raw["action"],
        params=MappingProxyType(dict(raw.get("params") or {})),
        timeout_seconds=float(raw.get("timeout_seconds", 30)),
        retries=int(raw.get("retries", 0)),
        acts_on=raw.get("acts_on", "target"),
    )


def _criterion(raw: Mapping[str, Any]) -> SuccessCriterion:
    return SuccessCriterion(
        metric=raw["metric"],
        condition=" ".join(str(raw["condition"]).split()),
        window_seconds=float(raw.get("window_seconds", 0)),
        deadline_seconds=float(raw["deadline_seconds"]),
    )


def _release(raw: Mapping[str, Any] | None) -> Release | None:
    if raw is None:
        return None
    return Release(
        metric=raw["metric"],
        at_most=float(raw["at_most"]),
        stable_seconds=float(raw["stable_seconds"]),
        undo=tuple(raw.get("undo", ())),
    )


def _build(data: dict[str, Any], path: Path) -> Playbook:
    return Playbook(
        id=data["id"],
        name=data["name"],
        description=data.get("description", ""),
        handles=tuple(data["handles"]),
        target_types=tuple(data["target_types"]),
        prerequisites=tuple(data.get("prerequisites", ())),
        steps=tuple(_step(s) for s in data["steps"]),
        rollback=tuple(_step(s) for s in data.get("rollback", ())),
        success=tuple(_criterion(c) for c in data["success"]),
        risk=data["risk"],
        cost=float(data["cost"]),
        requires_approval=bool(data["requires_approval"]),
        mitigation=bool(data.get("mitigation", False)),
        requires=tuple(data.get("requires", ())),
        release=_release(data.get("release")),
        parameters=MappingProxyType(dict(data.get("parameters") or {})),
        source=path,
    )


def _check_release(pb: Playbook) -> None:
    """Check that a release undoes only actions the playbook's steps carry out."""
    if pb.release is None:
        return
    actions = {st.action for st in pb.steps}
    for i, action in enumerate(pb.release.undo):
        if action not in actions:
            reason = (f"$.release.undo[{i}]: {action!r} is not an action of the playbook's "
                      f"steps ({', '.join(sorted(actions))})")
            raise SchemaError(str(pb.source), reason, item=pb.id)


def _check_params(pb: Playbook) -> None:
    """Check the parameter schema itself, and every step's params against it."""
    if not pb.parameters:
        return
    try:
        Draft202012Validator.check_schema(dict(pb.parameters))
    except JsonSchemaError as exc:
        raise SchemaError(str(pb.source), f"$.parameters: {exc.message}", item=pb.id) from exc
    validator = Draft202012Validator(dict(pb.parameters))
    for kind, steps in (("steps", pb.steps), ("rollback", pb.rollback)):
        for i, step in enumerate(steps):
            for err in validator.iter_errors(dict(step.params)):
                reason = f"$.{kind}[{i}].params: {err.message} (refused by $.parameters)"
                raise SchemaError(str(pb.source), reason, item=pb.id)


def playbook_iri(playbook_id: str) -> URIRef:
    """Return the IRI of a playbook."""
    return node_iri("playbook", playbook_id)


def pattern_iri(pattern_id: str) -> URIRef:
    """Return the IRI of an incident pattern."""
    return node_iri("pattern", pattern_id)


def playbook_triples(pb: Playbook) -> list[Triple]:
    """Return the knowledge-graph triples describing ``pb`` (no blank nodes)."""
    s = playbook_iri(pb.id)
    out: list[Triple] = [
        (s, RDF.type, SHK.Playbook),
        (s, SHK.playbookId, Lit(pb.id)),
        (s, RDFS.label, Lit(pb.name)),
        (s, SHK.riskLevel, Lit(pb.risk)),
        (s, SHK.cost, Lit(Decimal(str(pb.cost)), datatype=XSD.decimal)),
        (s, SHK.requiresApproval, Lit(pb.requires_approval)),
        (s, SHK.mitigation, Lit(pb.mitigation)),
        (s, SHK.sourceFile, Lit(str(pb.source))),
    ]
    if pb.description:
        out.append((s, RDFS.comment, Lit(pb.description)))
    out += [(s, SHK.handles, pattern_iri(p)) for p in pb.handles]
    out += [(s, SHK.targetType, Lit(t)) for t in pb.target_types]
    out += [(s, SHK.prerequisite, Lit(p)) for p in pb.prerequisites]
    out += [(s, SHK.requires, Lit(r)) for r in pb.requires]
    out += _steps_triples(pb.id, s, SHK.hasStep, "step", pb.steps)
    out += _steps_triples(pb.id, s, SHK.hasRollbackStep, "rollback", pb.rollback)
    for i, c in enumerate(pb.success):
        ci = node_iri("criterion", pb.id, str(i))
        out += [
            (s, SHK.hasSuccessCriterion, ci),
            (ci, RDF.type, SHK.SuccessCriterion),
            (ci, SHK.metric, Lit(c.metric)),
            (ci, SHK.condition, Lit(c.condition)),
            (ci, SHK.windowSeconds, _dec(c.window_seconds)),
            (ci, SHK.deadlineSeconds, _dec(c.deadline_seconds)),
        ]
    if pb.release is not None:
        ri = node_iri("release", pb.id)
        out += [
            (s, SHK.releaseWhen, ri),
            (ri, RDF.type, SHK.ReleaseCondition),
            (ri, SHK.metric, Lit(pb.release.metric)),
            (ri, SHK.atMost, _dec(pb.release.at_most)),
            (ri, SHK.stableSeconds, _dec(pb.release.stable_seconds)),
        ]
        out += [(ri, SHK.undoes, Lit(a)) for a in pb.release.undo]
    return out


def _steps_triples(
    pid: str, s: URIRef, prop: URIRef, kind: str, steps: tuple[Step, ...]
) -> list[Triple]:
    out: list[Triple] = []
    for i, step in enumerate(steps):
        si = node_iri("step", pid, kind, str(i))
        out += [
            (s, prop, si),
            (si, RDF.type, SHK.Step),
            (si, SHK.order, Lit(i)),
            (si, SHK.action, Lit(step.action)),
            (si, SHK.timeoutSeconds, _dec(step.timeout_seconds)),
            (si, SHK.retries, Lit(step.retries)),
            (si, SHK.stepScope, Lit(step.acts_on)),
            (si, SHK.parameters, Lit(json.dumps(dict(step.params), sort_keys=True))),
        ]
    return out


def _dec(value: float) -> Lit:
    return Lit(Decimal(str(value)), datatype=XSD.decimal)
