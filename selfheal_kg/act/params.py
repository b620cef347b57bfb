"""Validate a step's parameters against a small declared schema before anything runs.

Every executor declares, per action, the parameters it accepts (type, range, enum, regex).
``validate`` checks a step's params against that declaration and refuses anything else with
``UnsafeParameter`` naming the parameter and the reason; nothing reaches a command line,
a URL, a file or a database unless it passed here. Target names are checked with
``check_target`` against one safe pattern.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from selfheal_kg.act.executor import Params
from selfheal_kg.errors import UnsafeParameter
from selfheal_kg.model import FactValue

TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""A target (node) name: no spaces, no shell or path metacharacters, no leading dash."""

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
"""An SQL identifier (table, column, index): fits PostgreSQL's 63-byte limit."""

# Control characters (newlines, NUL, escape sequences) are refused in every string parameter.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_STR = 256

Kind = Literal["str", "int", "float", "bool"]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """The declaration of one parameter.

    Attributes:
        kind: ``str``, ``int``, ``float`` (ints accepted) or ``bool``; ``bool`` is never a number.
        required: refuse a step that omits it (otherwise ``default`` applies, when not None).
        default: value used when the step omits the parameter.
        minimum: inclusive lower bound for numbers.
        maximum: inclusive upper bound for numbers.
        enum: the only values accepted.
        pattern: a regex the whole string must match (``re.fullmatch``).
        max_length: longest string accepted.
    """

    kind: Kind
    required: bool = False
    default: FactValue | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[FactValue, ...] | None = None
    pattern: str | None = None
    max_length: int = _MAX_STR


Schema = Mapping[str, ParamSpec]


def check_target(action: str, target: str) -> str:
    """Return ``target`` when it matches ``TARGET``; raise ``UnsafeParameter`` otherwise."""
    if not isinstance(target, str) or not TARGET.fullmatch(target):
        raise UnsafeParameter(
            action, repr(target)[:80], "target must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
        )
    return target


def check_identifier(action: str, target: str, name: str, value: FactValue) -> str:
    """Return ``value`` when it is an SQL identifier; raise ``UnsafeParameter`` otherwise."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise UnsafeParameter(
            action, target, f"{name} must match [A-Za-z_][A-Za-z0-9_]{{0,62}}, got {value!r:.80}"
        )
    return value


def validate(action: str, target: str, params: Params, schema: Schema) -> dict[str, FactValue]:
    """Check ``params`` against ``schema``; return them with defaults filled in.

    Raises:
        UnsafeParameter: an unknown or missing parameter, or a value its spec refuses.
    """
    check_target(action, target)
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise UnsafeParameter(
            action, target, f"unknown parameter {unknown[0]!r}; accepted: {sorted(schema)}"
        )
    out: dict[str, FactValue] = {}
    for name, spec in schema.items():
        if name in params:
            out[name] = _check_value(action, target, name, params[name], spec)
        elif spec.required:
            raise UnsafeParameter(action, target, f"parameter {name!r} is required")
        elif spec.default is not None:
            out[name] = spec.default
    return out


def _check_value(action: str, target: str, name: str, value: object, spec: ParamSpec) -> FactValue:
    def refuse(reason: str) -> UnsafeParameter:
        return UnsafeParameter(action, target, f"parameter {name!r}: {reason}")

    checked = _check_kind(value, spec.kind)
    if checked is None:
        raise refuse(f"must be {spec.kind}, got {type(value).__name__} {value!r:.80}")
    if spec.enum is not None and checked not in spec.enum:
        raise refuse(f"must be one of {list(spec.enum)}, got {checked!r:.80}")
    if isinstance(checked, int | float) and not isinstance(checked, bool):
        if spec.minimum is not None and checked < spec.minimum:
            raise refuse(f"must be >= {spec.minimum:g}, got {checked}")
        if spec.maximum is not None and checked > spec.maximum:
            raise refuse(f"must be <= {spec.maximum:g}, got {checked}")
    if isinstance(checked, str):
        if len(checked) > spec.max_length:
            raise refuse(f"longer than {spec.max_length} characters")
        if _CONTROL.search(checked):
            raise refuse("contains a control character (newline, NUL, escape ...)")
        if spec.pattern is not None and not re.fullmatch(spec.pattern, checked):
            raise refuse(f"must match {spec.pattern}, got {checked!r:.80}")
    return checked


def _check_kind(value: object, kind: Kind) -> FactValue | None:
    """Return ``value`` as ``kind``, or ``None`` when it is not one (bools are not numbers)."""
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind == "int":
        return value if isinstance(value, int) else None
    if kind == "float":
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        return None
    return value if isinstance(value, str) else None
