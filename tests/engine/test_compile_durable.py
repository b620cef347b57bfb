"""Golden files pin the durable JSON of each shipped rule (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from selfheal_kg.engine.compile_durable import compile_rule, derived_attrs, rule_regexes
from selfheal_kg.engine.ir import ActionCall, Conjunction, FieldTest, Pattern, Rule
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.paths import shipped

GOLDEN = Path(__file__).with_name("golden")
RULES = load_rules(shipped("rules")).rules


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_compiled_rule_matches_its_golden_file(rule: object) -> None:
    compiled = json.dumps(compile_rule(rule), indent=2, sort_keys=True) + "\n"  # type: ignore[arg-type]
    path = GOLDEN / f"{rule.id}.json"  # type: ignore[attr-defined]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(compiled, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == compiled


def test_every_shipped_rule_has_a_golden_file() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} == {r.id for r in RULES}


def test_matches_compiles_to_a_derived_attribute_evaluated_in_python() -> None:
    pattern = Pattern("a", "alert", (FieldTest("alertname", "matches", "Check.*"),))
    rule = Rule("m", (Conjunction((pattern,)),), (ActionCall("escalate", ()),))
    ((name, body),) = compile_rule(rule).items()
    (regex,) = rule_regexes(rule)
    assert name == "m__0"
    assert body == {"all": [{"a": {"$and": [{"type": "alert"}, {regex.key: True}]}}]}
    assert derived_attrs((regex,), {"alertname": "CheckoutSlow"}) == {regex.key: True}
    assert derived_attrs((regex,), {"alertname": "xCheckout"}) == {regex.key: False}
    assert derived_attrs((regex,), {"alertname": 3}) == {regex.key: False}
