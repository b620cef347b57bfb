"""Compile the rule IR into durable-rules ruleset JSON.

Mapping (see docs/rules.md):

- each alternative of a rule (``any``) becomes its own durable rule ``<rule id>__<n>``;
- each pattern becomes one condition ``{alias: {"$and": [...]}}`` (tests on ONE fact go in
  one ``$and``), a ``not`` pattern becomes ``{"alias$not": ...}``;
- a reference ``s.node`` becomes ``{"s": "node"}`` (a join on the earlier alias);
- ``in`` becomes an ``$or`` of equalities;
- ``matches`` is evaluated by the wrapper with Python's ``re.fullmatch`` (durable's own regex
  dialect differs) and stored on the posted fact as a derived boolean ``__re_<hash>``;
- count windows and throttles are not compiled: the wrapper (``port.EngineCore``) applies them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from selfheal_kg.engine.ir import FieldTest, Pattern, Ref, Rule, RuleSet
from selfheal_kg.model import FactValue

_CMP = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
DERIVED_PREFIX = "__re_"


@dataclass(frozen=True, slots=True)
class Regex:
    """A ``matches`` test the wrapper evaluates before posting a fact."""

    key: str
    field: str
    pattern: str


@dataclass(frozen=True, slots=True)
class DurableProgram:
    """A compiled rule set: durable JSON plus what the wrapper needs to drive it."""

    definition: dict[str, Any]
    rules: dict[str, tuple[str, tuple[str, ...]]]
    regexes: tuple[Regex, ...]


def compile_ruleset(ruleset: RuleSet) -> DurableProgram:
    """Compile every rule; durable rule name → (rule id, aliases in pattern order)."""
    definition: dict[str, Any] = {}
    rules: dict[str, tuple[str, tuple[str, ...]]] = {}
    regexes: dict[str, Regex] = {}
    for rule in ruleset.rules:
        definition.update(compile_rule(rule))
        for index, conj in enumerate(rule.alternatives):
            rules[durable_name(rule.id, index)] = (rule.id, conj.aliases())
        for regex in rule_regexes(rule):
            regexes[regex.key] = regex
    return DurableProgram(definition, rules, tuple(regexes.values()))


def durable_name(rule_id: str, alternative: int) -> str:
    """Return the durable rule name of one alternative of a rule."""
    return f"{rule_id}__{alternative}"


def compile_rule(rule: Rule) -> dict[str, Any]:
    """Return ``{durable rule name: definition}`` for each alternative of ``rule``."""
    out: dict[str, Any] = {}
    for index, conj in enumerate(rule.alternatives):
        conditions = [{p.alias: _pattern(p)} for p in conj.patterns]
        conditions += [{f"{p.alias}$not": _pattern(p)} for p in conj.absent]
        out[durable_name(rule.id, index)] = {"all": conditions}
    return out


def rule_regexes(rule: Rule) -> list[Regex]:
    """Return the ``matches`` tests of ``rule`` as derived-attribute definitions."""
    return [
        Regex(regex_key(t.field, str(t.value)), t.field, str(t.value))
        for conj in rule.alternatives
        for p in (*conj.patterns, *conj.absent)
        for t in p.tests
        if t.op == "matches"
    ]


def regex_key(field: str, pattern: str) -> str:
    """Return the derived attribute name for ``field matches pattern`` (stable across runs)."""
    digest = hashlib.sha256(f"{field}\0{pattern}".encode()).hexdigest()[:12]
    return DERIVED_PREFIX + digest


def derived_attrs(regexes: tuple[Regex, ...], fact: dict[str, FactValue]) -> dict[str, bool]:
    """Evaluate every ``matches`` test on ``fact`` (non-string or missing fields never match)."""
    out: dict[str, bool] = {}
    for regex in regexes:
        value = fact.get(regex.field)
        out[regex.key] = isinstance(value, str) and re.fullmatch(regex.pattern, value) is not None
    return out


def _pattern(pattern: Pattern) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = [{"type": pattern.fact_type}]
    clauses += [_test(t) for t in pattern.tests]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _test(test: FieldTest) -> dict[str, Any]:
    if test.op == "matches":
        return {regex_key(test.field, str(test.value)): True}
    if test.op == "in":
        assert isinstance(test.value, tuple)
        options = [{test.field: v} for v in test.value]
        return options[0] if len(options) == 1 else {"$or": options}
    operand = _operand(test.value)
    if test.op == "==":
        return {test.field: operand}
    return {_CMP[test.op]: {test.field: operand}}


def _operand(value: object) -> Any:
    if isinstance(value, Ref):
        return {value.alias: value.field}
    return value
