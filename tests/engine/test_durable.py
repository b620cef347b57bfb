"""The durable-rules adapter: its traps are handled (threads, errors, reload, memory)."""

from __future__ import annotations

import copy
import threading

import pytest
from durable import engine as durable_engine

from selfheal_kg.engine.durable import DurableMatcher, DurableRuleEngine
from selfheal_kg.engine.ir import ActionCall, Conjunction, FieldTest, Pattern, Ref, Rule, RuleSet
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.errors import RuleActionError
from selfheal_kg.model import Fact, FactValue
from selfheal_kg.paths import shipped

SIG = Conjunction((Pattern("s", "signal", (FieldTest("direction", "==", "up"),)),))
RULE = Rule("r", (SIG,), (ActionCall("diagnose", (("pattern", "P"), ("node", Ref("s", "node")))),))


def signal(fid: str, node: str = "a", at: float = 0.0) -> Fact:
    attrs: dict[str, FactValue] = {
        "node": node,
        "metric": "m",
        "detector": "d",
        "direction": "up",
        "score": 0.9,
        "onset": at,
    }
    return Fact(fid, "signal", attrs, at)


def test_raw_durable_swallows_action_exceptions() -> None:
    class Host(durable_engine.Host):  # type: ignore[misc]
        def _run(self) -> None:
            pass

    def boom(_closure: object) -> None:
        raise RuntimeError("boom")

    host = Host()
    host.register_rulesets({"raw_swallow": {"r": {"all": [{"m": {"t": 1}}], "run": boom}}})
    state = host.assert_fact("raw_swallow", {"id": "1", "sid": "0", "t": 1})  # no exception
    assert "boom" in state["exception"]


def test_action_exceptions_are_surfaced(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = DurableRuleEngine()
    engine.load(RuleSet("t", (RULE,)))

    def fail(*_args: object) -> None:
        raise ValueError("broken action")

    monkeypatch.setattr(DurableMatcher, "record", fail)
    with pytest.raises(RuleActionError) as info:
        engine.assert_fact(signal("s1"))
    assert info.value.rule == "r" and isinstance(info.value.cause, ValueError)


def test_a_missing_referenced_field_is_a_rule_action_error() -> None:
    engine = DurableRuleEngine()
    engine.load(RuleSet("t", (RULE,)))
    with pytest.raises(RuleActionError) as info:
        engine.assert_fact(Fact("s1", "signal", {"direction": "up"}, 0))
    assert info.value.rule == "r" and info.value.action == "diagnose"


def test_reload_registers_a_new_version_and_deletes_the_old() -> None:
    engine = DurableRuleEngine(name="rl")
    engine.load(RuleSet("t", (RULE,)))
    assert engine.active_name == "rl__v1"
    engine.assert_fact(signal("s1"))
    engine.load(RuleSet("t", (RULE,)))
    assert engine.active_name == "rl__v2"
    host = engine._host
    assert list(host._ruleset_directory) == ["rl__v2"]
    assert [f["id"] for f in engine.durable_facts()] == ["s1"]


def test_no_background_threads_are_started() -> None:
    before = threading.active_count()
    engines = [DurableRuleEngine() for _ in range(3)]
    for engine in engines:
        engine.load(RuleSet("t", (RULE,)))
    assert threading.active_count() == before


def test_hostile_fact_keys_cannot_spoof_sessions_or_derived_tests() -> None:
    engine = DurableRuleEngine()
    engine.load(RuleSet("t", (RULE,)))
    attrs: dict[str, FactValue] = {
        "node": "a",
        "direction": "up",
        "sid": "other",
        "$s": 1,
        "__re_x": True,
    }
    assert len(engine.assert_fact(Fact("s1", "signal", attrs, 0))) == 1
    (stored,) = engine.durable_facts()
    assert stored["sid"] == "0" and "$s" not in stored and "__re_x" not in stored


def test_fact_count_stays_bounded_over_100k_cycles() -> None:
    engine = DurableRuleEngine(ttl=60.0)
    engine.load(load_rules(shipped("rules")))
    unmatched = Fact("x", "signal", {"node": "n", "metric": "other", "direction": "up"}, 0)
    for i in range(100_000):
        fact = copy.copy(unmatched) if i % 2 else signal("s", node=f"n{i % 7}", at=float(i))
        fid = f"f{i}"
        engine.assert_fact(Fact(fid, fact.type, fact.attrs, float(i)))
        engine.retract_fact(fid)
    assert engine.facts() == []
    assert engine.durable_facts() == []
    assert engine._facts == {} and engine._expiry == {}
    engine.advance(200_000.0)
    assert engine._heap == [] and engine._gate.windows == {} and engine._gate.throttled == {}
