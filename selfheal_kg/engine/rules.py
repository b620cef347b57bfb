"""Load rule files: YAML → JSON Schema → typed IR, with errors naming file, line and rule id.

See ``docs/rules.md`` for the format. Every refusal is a ``RuleLoadError`` carrying the file,
the line (YAML syntax errors) or the rule id, and a reason a rule author can act on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from selfheal_kg.engine.actions import check_action
from selfheal_kg.engine.ir import (
    COMMON_FIELDS,
    FACT_FIELDS,
    ActionCall,
    Conjunction,
    CountWindow,
    FieldTest,
    Op,
    Operand,
    Pattern,
    Ref,
    Rule,
    RuleSet,
    Throttle,
)
from selfheal_kg.errors import RuleLoadError
from selfheal_kg.model import FactValue

_SCHEMA_PATH = Path(__file__).with_name("rule.schema.json")
_MAX_FILE_BYTES = 1_000_000


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def load_rules(directory: str | Path, name: str = "default") -> RuleSet:
    """Load and merge every ``*.yaml`` / ``*.yml`` file of ``directory`` (not recursive).

    Raises:
        RuleLoadError: a file is refused, or two rules share an id.
    """
    root = Path(directory)
    if not root.is_dir():
        raise RuleLoadError(str(root), "not a directory")
    files = sorted([*root.glob("*.yaml"), *root.glob("*.yml")])
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in files:
        for rule in load_rule_file(path).rules:
            if rule.id in seen:
                raise RuleLoadError(
                    str(path), f"duplicate rule id (first defined in {seen[rule.id]})", item=rule.id
                )
            seen[rule.id] = str(path)
            rules.append(rule)
    return RuleSet(name=name, rules=tuple(rules))


def load_rule_file(path: str | Path) -> RuleSet:
    """Load one rule file into a ``RuleSet`` (named by its ``ruleset`` key or file stem).

    Raises:
        RuleLoadError: unreadable file, YAML syntax error (with line), schema error, unknown
            action or fact field, unbound reference, duplicate rule id.
    """
    file = str(path)
    doc = _read_yaml(Path(path))
    _check_schema(doc, file)
    data = cast(dict[str, Any], doc)
    rules = tuple(_parse_rule(raw, file) for raw in data["rules"])
    ruleset = RuleSet(name=str(data.get("ruleset", Path(path).stem)), rules=rules)
    validate_ruleset(ruleset)
    return ruleset


def validate_ruleset(ruleset: RuleSet) -> None:
    """Refuse a rule set with duplicate ids, unknown actions/fields or unbound references.

    Engines call this in ``load`` too, so a rule set built in code is checked like a file.
    """
    seen: set[str] = set()
    for rule in ruleset.rules:
        if rule.id in seen:
            raise RuleLoadError(rule.source_file or ruleset.name, "duplicate rule id", item=rule.id)
        seen.add(rule.id)
        reason = check_rule(rule)
        if reason is not None:
            raise RuleLoadError(rule.source_file or ruleset.name, reason, item=rule.id)


def check_rule(rule: Rule) -> str | None:
    """Return why ``rule`` is invalid, or ``None``."""
    for conj in rule.alternatives:
        reason = _check_conjunction(conj)
        if reason is not None:
            return reason
    for call in rule.actions:
        reason = check_action(call)
        if reason is not None:
            return reason
    refs = [v for call in rule.actions for _, v in call.params if isinstance(v, Ref)]
    refs += list(rule.count.group_by if rule.count else ())
    refs += list(rule.throttle.group_by if rule.throttle else ())
    for conj in rule.alternatives:
        bound = {p.alias: p.fact_type for p in conj.patterns}
        for ref in refs:
            reason = _check_ref(ref, bound)
            if reason is not None:
                return reason
    return None


def _check_conjunction(conj: Conjunction) -> str | None:
    bound: dict[str, str] = {}
    for pattern in conj.patterns:
        if pattern.alias in bound:
            return f"alias {pattern.alias!r} bound twice"
        reason = _check_pattern(pattern, bound)
        if reason is not None:
            return reason
        bound[pattern.alias] = pattern.fact_type
    for pattern in conj.absent:
        if pattern.alias in bound:
            return f"alias {pattern.alias!r} of a 'not' pattern is already bound"
        reason = _check_pattern(pattern, bound)
        if reason is not None:
            return reason
    return None


def _check_pattern(pattern: Pattern, bound: Mapping[str, str]) -> str | None:
    fields = FACT_FIELDS.get(pattern.fact_type)
    if fields is None:
        return f"unknown fact type {pattern.fact_type!r} (known: {', '.join(sorted(FACT_FIELDS))})"
    for test in pattern.tests:
        if test.field not in fields | COMMON_FIELDS:
            return (
                f"unknown field {test.field!r} for fact type {pattern.fact_type!r} "
                f"(known: {', '.join(sorted(fields))})"
            )
        if isinstance(test.value, Ref):
            reason = _check_ref(test.value, bound)
            if reason is not None:
                return reason
    return None


def _check_ref(ref: Ref, bound: Mapping[str, str]) -> str | None:
    if ref.alias not in bound:
        return f"reference {ref} names an alias not bound before it"
    fields = FACT_FIELDS.get(bound[ref.alias], frozenset()) | COMMON_FIELDS
    if ref.field not in fields:
        return f"reference {ref}: unknown field {ref.field!r} for fact type {bound[ref.alias]!r}"
    return None


def _read_yaml(path: Path) -> object:
    file = str(path)
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise RuleLoadError(file, f"file larger than {_MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleLoadError(file, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RuleLoadError(file, "not UTF-8 text") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "YAML syntax error"
        raise RuleLoadError(file, f"YAML syntax error: {problem}", line=line) from exc


def _check_schema(doc: object, file: str) -> None:
    error = best_match(_validator().iter_errors(doc))
    if error is None:
        return
    path = list(error.absolute_path)
    item = None
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int) and isinstance(doc, dict):
        raw = doc["rules"][path[1]]
        item = str(raw.get("id", f"rules[{path[1]}]")) if isinstance(raw, dict) else None
    where = "/".join(str(p) for p in path) or "(top level)"
    raise RuleLoadError(file, f"schema: at {where}: {error.message}", item=item)


def _parse_rule(raw: Mapping[str, Any], file: str) -> Rule:
    rule_id = str(raw["id"])
    try:
        when = raw["when"]
        alternatives = tuple(_parse_conj(c) for c in when.get("any", [when]))
        return Rule(
            id=rule_id,
            alternatives=alternatives,
            actions=tuple(_parse_action(a) for a in raw["actions"]),
            description=str(raw.get("description", "")),
            priority=int(raw.get("priority", 0)),
            count=_parse_count(raw.get("count")),
            throttle=_parse_throttle(raw.get("throttle")),
            source_file=file,
        )
    except ValueError as exc:
        raise RuleLoadError(file, str(exc), item=rule_id) from exc


def _parse_conj(raw: Mapping[str, Any]) -> Conjunction:
    return Conjunction(
        patterns=tuple(_parse_pattern(p) for p in raw["all"]),
        absent=tuple(_parse_pattern(p) for p in raw.get("not", [])),
    )


def _parse_pattern(raw: Mapping[str, Any]) -> Pattern:
    ((alias, body),) = raw.items()
    tests: list[FieldTest] = []
    for field, spec in body.items():
        if field != "type":
            tests.extend(_parse_tests(field, spec))
    return Pattern(alias=alias, fact_type=body["type"], tests=tuple(tests))


def _parse_tests(field: str, spec: object) -> list[FieldTest]:
    if not isinstance(spec, dict):
        return [FieldTest(field, "==", cast(FactValue, spec))]
    tests: list[FieldTest] = []
    for op, value in spec.items():
        if op == "ref":
            tests.append(FieldTest(field, "==", parse_ref(value)))
        elif op == "in":
            tests.append(FieldTest(field, "in", tuple(value)))
        elif op == "matches":
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"field {field}: bad regular expression: {exc}") from exc
            tests.append(FieldTest(field, "matches", value))
        else:
            tests.append(FieldTest(field, cast(Op, op), _operand(value)))
    return tests


def _operand(value: object) -> Operand:
    if isinstance(value, dict):
        return parse_ref(value["ref"])
    return cast(FactValue, value)


def parse_ref(text: str) -> Ref:
    """Parse ``alias.field`` into a ``Ref``."""
    alias, _, field = text.partition(".")
    return Ref(alias, field)


def _parse_action(raw: Mapping[str, Any]) -> ActionCall:
    ((name, params),) = raw.items()
    return ActionCall(name=name, params=tuple((k, _operand(v)) for k, v in params.items()))  # type: ignore[misc]


def _refs(items: Sequence[str] | None) -> tuple[Ref, ...]:
    return tuple(parse_ref(s) for s in items or ())


def _parse_count(raw: Mapping[str, Any] | None) -> CountWindow | None:
    if raw is None:
        return None
    return CountWindow(int(raw["at_least"]), float(raw["within"]), _refs(raw.get("group_by")))


def _parse_throttle(raw: Mapping[str, Any] | None) -> Throttle | None:
    if raw is None:
        return None
    return Throttle(float(raw["once_within"]), _refs(raw.get("group_by")))
