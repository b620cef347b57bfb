"""Loading rule files: every refusal names file, line or rule id, and a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal_kg.engine.ir import Ref
from selfheal_kg.engine.rules import load_rule_file, load_rules
from selfheal_kg.errors import RuleLoadError
from selfheal_kg.paths import shipped


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
rules:
  - id: r1
    when:
      all:
        - s: {type: signal, metric: m}
    actions:
      - diagnose: {pattern: P, node: {ref: s.node}}
"""


def _refusal(tmp_path: Path, text: str) -> RuleLoadError:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RuleLoadError) as info:
        load_rule_file(path)
    assert info.value.file == str(path)
    return info.value


def test_loads_a_good_file(tmp_path: Path) -> None:
    ruleset = load_rule_file(write(tmp_path, "good.yaml", GOOD))
    (rule,) = ruleset.rules
    assert rule.id == "r1" and ruleset.name == "good"
    assert rule.actions[0].params == (("pattern", "P"), ("node", Ref("s", "node")))


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    err = _refusal(tmp_path, "rules:\n  - id: r1\n    when: [unclosed\n")
    assert err.line is not None and err.line >= 3
    assert "YAML syntax error" in err.reason


def test_schema_error_names_the_rule(tmp_path: Path) -> None:
    err = _refusal(tmp_path, GOOD.replace("    when:", "    priority: high\n    when:"))
    assert err.item == "r1"
    assert "priority" in err.reason


def test_unknown_action_names_the_rule(tmp_path: Path) -> None:
    err = _refusal(tmp_path, GOOD.replace("diagnose:", "reboot_everything:"))
    assert err.item == "r1"
    assert "unknown action 'reboot_everything'" in err.reason


def test_unknown_fact_field_names_the_rule(tmp_path: Path) -> None:
    err = _refusal(tmp_path, GOOD.replace("metric: m", "colour: red"))
    assert err.item == "r1"
    assert "unknown field 'colour'" in err.reason and "signal" in err.reason


def test_unknown_fact_type_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, GOOD.replace("type: signal", "type: gossip"))
    assert "unknown fact type 'gossip'" in err.reason


def test_reference_to_an_unbound_alias_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, GOOD.replace("{ref: s.node}", "{ref: x.node}"))
    assert err.item == "r1" and "x.node" in err.reason


def test_missing_action_parameter_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, GOOD.replace("pattern: P, ", ""))
    assert "missing parameter 'pattern'" in err.reason


def test_bad_regex_is_refused(tmp_path: Path) -> None:
    err = _refusal(tmp_path, GOOD.replace("metric: m", "metric: {matches: '(['}"))
    assert err.item == "r1" and "regular expression" in err.reason


def test_hostile_and_empty_documents_are_refused(tmp_path: Path) -> None:
    assert "schema" in _refusal(tmp_path, "").reason
    err = _refusal(tmp_path, "rules: [{id: 'a b;rm -rf', when: {all: []}, actions: []}]")
    assert "schema" in err.reason


def test_python_tags_are_never_constructed(tmp_path: Path) -> None:
    err = _refusal(tmp_path, "rules: !!python/object/apply:os.system ['true']\n")
    assert "YAML" in err.reason


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError, match="cannot read"):
        load_rule_file(tmp_path / "nope.yaml")


def test_duplicate_ids_across_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(RuleLoadError) as info:
        load_rules(tmp_path)
    assert info.value.item == "r1" and "duplicate" in info.value.reason
    assert info.value.file.endswith("b.yaml")


def test_shipped_rules_load_and_merge(shipped_rule_ids: set[str]) -> None:
    ruleset = load_rules(shipped("rules"))
    assert ruleset.ids() == shipped_rule_ids
    assert {"service-down", "high-error-rate", "high-latency"} <= ruleset.ids()
    assert len(ruleset.rule("service-down").alternatives) == 2
