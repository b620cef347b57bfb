"""Rule unit tests from files (like ``promtool test rules``): facts in, firings out.

A fixture file names its rule files and lists cases; each case runs on a fresh engine::

    rule_files: [../service-down.yaml]      # relative to the fixture file
    cases:
      - name: health down diagnoses ServiceDown
        steps:                              # each step: advance to `at`, then assert/retract
          - {at: 100, assert: {id: h1, type: health, node: checkout, status: down}}
          - {at: 200, retract: h1}
          - {at: 900}                       # only advance time
        expect:                             # every firing of the case, in any order
          - {rule: service-down, action: diagnose,
             params: {pattern: ServiceDown, node: checkout}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from selfheal_kg.engine.ir import Rule, RuleSet
from selfheal_kg.engine.port import RuleEngine
from selfheal_kg.engine.rules import load_rule_file
from selfheal_kg.errors import SchemaError
from selfheal_kg.model import Fact, Firing

_SCALAR = {"type": ["string", "number", "boolean"]}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rule_files", "cases"],
    "properties": {
        "rule_files": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "cases": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "steps", "expect"],
                "properties": {
                    "name": {"type": "string"},
                    "steps": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["at"],
                            "properties": {
                                "at": {"type": "number"},
                                "assert": {
                                    "type": "object",
                                    "required": ["id", "type"],
                                    "additionalProperties": _SCALAR,
                                },
                                "retract": {"type": "string"},
                            },
                        },
                    },
                    "expect": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["rule", "action", "params"],
                            "properties": {
                                "rule": {"type": "string"},
                                "action": {"type": "string"},
                                "params": {"type": "object", "additionalProperties": _SCALAR},
                            },
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class Fixture:
    """A loaded fixture file: its merged rules and raw cases."""

    file: str
    ruleset: RuleSet
    cases: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case."""

    file: str
    name: str
    passed: bool
    expected: tuple[str, ...]
    got: tuple[str, ...]


def load_fixture(path: str | Path) -> Fixture:
    """Load and check a fixture file and the rule files it names.

    Raises:
        SchemaError: the fixture is malformed.
        RuleLoadError: a named rule file is refused.
    """
    file = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SchemaError(file, f"cannot read fixture: {exc}") from exc
    error = best_match(Draft202012Validator(_SCHEMA).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaError(file, f"at {where}: {error.message}")
    rules: list[Rule] = []
    for name in doc["rule_files"]:
        rules.extend(load_rule_file(Path(path).parent / name).rules)
    ruleset = RuleSet(name=Path(path).stem, rules=tuple(rules))
    return Fixture(file, ruleset, tuple(doc["cases"]))


def run_fixture(fixture: Fixture, make_engine: Callable[[], RuleEngine]) -> list[CaseResult]:
    """Run every case of ``fixture`` on a fresh engine each."""
    return [_run_case(fixture, case, make_engine) for case in fixture.cases]


def run_fixture_dir(
    directory: str | Path, make_engine: Callable[[], RuleEngine]
) -> list[CaseResult]:
    """Run every ``*.yaml`` fixture file of ``directory``, in name order."""
    results: list[CaseResult] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        results += run_fixture(load_fixture(path), make_engine)
    return results


def firing_key(firing: Firing) -> str:
    """Return a canonical text for comparing a firing with an expectation."""
    return _key(firing.rule, firing.action, firing.params)


def _key(rule: str, action: str, params: Mapping[str, Any]) -> str:
    return json.dumps({"rule": rule, "action": action, "params": dict(params)}, sort_keys=True)


def _run_case(
    fixture: Fixture, case: Mapping[str, Any], make_engine: Callable[[], RuleEngine]
) -> CaseResult:
    engine = make_engine()
    try:
        engine.load(fixture.ruleset)
        got = [firing_key(f) for f in run_steps(engine, case["steps"])]
    finally:
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    expected = sorted(_key(e["rule"], e["action"], e["params"]) for e in case["expect"])
    return CaseResult(
        fixture.file, str(case["name"]), sorted(got) == expected, tuple(expected), tuple(got)
    )


def run_steps(engine: RuleEngine, steps: list[Mapping[str, Any]]) -> list[Firing]:
    """Drive ``engine`` through fixture steps and return every firing, in order."""
    firings: list[Firing] = []
    for step in steps:
        at = float(step["at"])
        firings += engine.advance(at)
        if "assert" in step:
            raw = dict(step["assert"])
            fact_id, fact_type = str(raw.pop("id")), str(raw.pop("type"))
            firings += engine.assert_fact(Fact(fact_id, fact_type, raw, at))
        if "retract" in step:
            firings += engine.retract_fact(str(step["retract"]))
    return firings
