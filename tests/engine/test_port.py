"""Engine semantics shared by every adapter (run on durable-rules and on the reference)."""

from __future__ import annotations

import pytest

from selfheal_kg.engine.ir import (
    ActionCall,
    Conjunction,
    CountWindow,
    FieldTest,
    Pattern,
    Ref,
    Rule,
    RuleSet,
    Throttle,
)
from selfheal_kg.engine.port import EngineCore
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.errors import RuleLoadError
from selfheal_kg.model import Fact, FactValue
from selfheal_kg.paths import shipped


def health(fid: str, node: str, status: str = "down", at: float = 0.0) -> Fact:
    return Fact(fid, "health", {"node": node, "status": status, "source": "probe"}, at)


def signal(fid: str, node: str, metric: str = "m", at: float = 0.0, **kw: FactValue) -> Fact:
    attrs: dict[str, FactValue] = {
        "node": node,
        "metric": metric,
        "detector": "ewma",
        "direction": "up",
        "score": 0.9,
        "onset": at,
    }
    attrs.update(kw)
    return Fact(fid, "signal", attrs, at)


def diagnose(
    rule_id: str, *conjs: Conjunction, alias: str = "s", field: str = "node", **extra: object
) -> Rule:
    call = ActionCall("diagnose", (("pattern", "P"), ("node", Ref(alias, field))))
    return Rule(id=rule_id, alternatives=conjs, actions=(call,), **extra)  # type: ignore[arg-type]


SIG = Conjunction((Pattern("s", "signal", (FieldTest("direction", "==", "up"),)),))


def loaded(engine_cls: type[EngineCore], *rules: Rule, **kw: object) -> EngineCore:
    engine = engine_cls(**kw)  # type: ignore[arg-type]
    engine.load(RuleSet("t", rules))
    return engine


def test_shipped_rules_fire(engine_cls: type[EngineCore]) -> None:
    engine = engine_cls()
    engine.load(load_rules(shipped("rules")))
    got = engine.assert_fact(health("h1", "checkout"))
    got += engine.assert_fact(signal("s1", "cart", "http.server.error.ratio"))
    got += engine.assert_fact(signal("s2", "search", "http.server.duration.mean"))
    got += engine.assert_fact(
        signal("s3", "auth", "http.server.request.rate", direction="down", score=0.85,
               change=-1.0)
    )
    pairs = {(f.params["pattern"], f.params["node"]) for f in got}
    assert pairs == {
        ("ServiceDown", "checkout"),
        ("HighErrorRate", "cart"),
        ("HighLatency", "search"),
        ("ServiceDown", "auth"),
    }
    down = next(f for f in got if f.params["node"] == "checkout")
    assert down.rule == "service-down" and down.action == "diagnose" and down.priority == 100
    assert down.facts == (
        {"node": "checkout", "status": "down", "source": "probe", "id": "h1", "type": "health"},
    )


def test_join_binds_facts_through_a_reference(engine_cls: type[EngineCore]) -> None:
    conj = Conjunction(
        (
            Pattern("h", "health", (FieldTest("status", "==", "down"),)),
            Pattern("c", "calls", (FieldTest("callee", "==", Ref("h", "node")),)),
        )
    )
    engine = loaded(engine_cls, diagnose("j", conj, alias="c", field="caller"))
    assert engine.assert_fact(Fact("c1", "calls", {"caller": "web", "callee": "db"}, 0)) == []
    assert engine.assert_fact(Fact("c2", "calls", {"caller": "x", "callee": "other"}, 0)) == []
    (firing,) = engine.assert_fact(health("h1", "db"))
    assert firing.params == {"pattern": "P", "node": "web"}
    assert [f["id"] for f in firing.facts] == ["h1", "c1"]


def test_not_blocks_until_the_blocker_is_retracted(engine_cls: type[EngineCore]) -> None:
    conj = Conjunction(
        (Pattern("h", "health", ()),),
        absent=(Pattern("a", "alert", (FieldTest("node", "==", Ref("h", "node")),)),),
    )
    engine = loaded(engine_cls, diagnose("n", conj, alias="h"))
    engine.assert_fact(Fact("a1", "alert", {"node": "db", "alertname": "X", "severity": "p"}, 0))
    assert engine.assert_fact(health("h1", "db")) == []
    (firing,) = engine.retract_fact("a1")
    assert firing.params["node"] == "db"


def test_retraction_clears_facts_and_lets_a_rule_fire_again(engine_cls: type[EngineCore]) -> None:
    engine = loaded(engine_cls, diagnose("r", SIG))
    assert len(engine.assert_fact(signal("s1", "a"))) == 1
    assert engine.assert_fact(signal("s1", "a")) == []  # same fact again: nothing new
    assert engine.retract_fact("s1") == []
    assert engine.facts() == []
    assert engine.retract_fact("s1") == []  # unknown ids are ignored
    assert len(engine.assert_fact(signal("s1", "a"))) == 1


def test_count_window_needs_enough_matches_per_key(engine_cls: type[EngineCore]) -> None:
    rule = diagnose("c", SIG, count=CountWindow(3, 300.0, (Ref("s", "node"),)))
    engine = loaded(engine_cls, rule)
    assert engine.assert_fact(signal("s1", "a", at=0)) == []
    assert engine.assert_fact(signal("s2", "a", at=100)) == []
    assert engine.assert_fact(signal("b1", "b", at=150)) == []
    assert engine.advance(301) == []  # s1 leaves the window
    assert engine.assert_fact(signal("s3", "a", at=310)) == []
    (firing,) = engine.assert_fact(signal("s4", "a", at=320))
    assert [f["id"] for f in firing.facts] == ["s2", "s3", "s4"]
    assert firing.at == 320
    assert engine.assert_fact(signal("s5", "a", at=330)) == []  # the window restarted


def test_count_window_forgets_retracted_facts(engine_cls: type[EngineCore]) -> None:
    engine = loaded(engine_cls, diagnose("c", SIG, count=CountWindow(2, 300.0)))
    engine.assert_fact(signal("s1", "a", at=0))
    engine.retract_fact("s1")
    assert engine.assert_fact(signal("s2", "a", at=1)) == []
    assert len(engine.assert_fact(signal("s3", "a", at=2))) == 1


def test_throttle_fires_once_per_window_per_key(engine_cls: type[EngineCore]) -> None:
    rule = diagnose("t", SIG, throttle=Throttle(60.0, (Ref("s", "node"),)))
    engine = loaded(engine_cls, rule)
    assert len(engine.assert_fact(signal("s1", "a", at=0))) == 1
    assert engine.assert_fact(signal("s2", "a", at=30)) == []
    assert len(engine.assert_fact(signal("b1", "b", at=30))) == 1
    engine.advance(60)
    assert len(engine.assert_fact(signal("s3", "a", at=60))) == 1


def test_ttl_expires_facts_on_advance(engine_cls: type[EngineCore]) -> None:
    engine = loaded(engine_cls, diagnose("r", SIG), ttl=100.0, ttl_by_type={"health": 10.0})
    engine.assert_fact(signal("s1", "a", at=0))
    engine.assert_fact(health("h1", "a", at=0))
    engine.advance(10)
    assert [f.id for f in engine.facts()] == ["s1"]
    engine.advance(99)
    assert [f.id for f in engine.facts()] == ["s1"]
    engine.advance(100)
    assert engine.facts() == []


def test_replacing_a_fact_keeps_its_new_expiry(engine_cls: type[EngineCore]) -> None:
    engine = loaded(engine_cls, diagnose("r", SIG), ttl=100.0)
    engine.assert_fact(signal("s1", "a", at=0))
    engine.assert_fact(signal("s1", "a", at=50, score=0.95))
    engine.advance(120)
    assert [f.attrs["score"] for f in engine.facts()] == [0.95]


def test_failed_reload_keeps_the_running_rules(engine_cls: type[EngineCore]) -> None:
    engine = loaded(engine_cls, diagnose("r", SIG))
    before = engine.ruleset
    bad = Rule("bad", (SIG,), (ActionCall("format_disk", ()),))
    with pytest.raises(RuleLoadError) as info:
        engine.load(RuleSet("t2", (bad,)))
    assert info.value.item == "bad" and "unknown action" in info.value.reason
    assert engine.ruleset is before
    assert len(engine.assert_fact(signal("s1", "a"))) == 1


def test_reload_replays_facts_into_the_new_rules(engine_cls: type[EngineCore]) -> None:
    engine = loaded(engine_cls, diagnose("old", SIG))
    assert len(engine.assert_fact(signal("s1", "a"))) == 1
    engine.load(RuleSet("t2", (diagnose("old", SIG), diagnose("new", SIG))))
    assert [f.id for f in engine.facts()] == ["s1"]
    replayed = engine.advance(1)
    assert [f.rule for f in replayed] == ["new"]  # "old" already saw s1
    assert {f.rule for f in engine.assert_fact(signal("s2", "b"))} == {"old", "new"}
