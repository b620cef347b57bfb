"""Throttle trailing edge: a new episode refused in a quiet period fires when it ends.

Every test runs on both engines (``engine_cls``): the semantics live in ``EngineCore``.
"""

from __future__ import annotations

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
from selfheal_kg.model import Fact, FactValue, Firing

SIG = Conjunction((Pattern("s", "signal", (FieldTest("direction", "==", "up"),)),))
DOWN = Conjunction((Pattern("s", "health", (FieldTest("status", "==", "down"),)),))
QUIET = 15.0


def signal(fid: str, node: str, at: float, score: float = 0.9) -> Fact:
    attrs: dict[str, FactValue] = {"node": node, "direction": "up", "score": score}
    return Fact(fid, "signal", attrs, at)


def throttled(rule_id: str, conj: Conjunction = SIG, **extra: object) -> Rule:
    call = ActionCall("diagnose", (("pattern", rule_id), ("node", Ref("s", "node"))))
    throttle = Throttle(QUIET, (Ref("s", "node"),))
    return Rule(rule_id, (conj,), (call,), throttle=throttle, **extra)  # type: ignore[arg-type]


def engine_with(engine_cls: type[EngineCore], *rules: Rule, **kw: object) -> EngineCore:
    engine = engine_cls(**kw)  # type: ignore[arg-type]
    engine.load(RuleSet("t", rules))
    return engine


def ids(firing: Firing) -> list[str]:
    return [str(f["id"]) for f in firing.facts]


def first_episode(engine: EngineCore, node: str = "a") -> None:
    """Fire every rule at 0 for ``node``, then end that episode: quiet periods until 15."""
    fired = engine.assert_fact(signal(f"{node}0", node, 0))
    assert len(fired) == len(engine.ruleset.rules if engine.ruleset else ())
    assert {f.at for f in fired} == {0}
    assert engine.retract_fact(f"{node}0") == []


def test_new_episode_in_quiet_period_fires_latest_match_when_it_ends(
    engine_cls: type[EngineCore],
) -> None:
    engine = engine_with(engine_cls, throttled("r"))
    first_episode(engine)
    assert engine.assert_fact(signal("a1", "a", 5)) == []
    assert engine.assert_fact(signal("a2", "a", 8)) == []
    assert engine.advance(14.9) == []
    (firing,) = engine.advance(15)
    assert (firing.rule, firing.params["node"], firing.at, ids(firing)) == ("r", "a", 15, ["a2"])
    assert engine.advance(30) == [] and engine.advance(1000) == []  # a2 persists: no repeat


def test_deferred_match_is_dropped_when_its_fact_is_retracted(
    engine_cls: type[EngineCore],
) -> None:
    engine = engine_with(engine_cls, throttled("r"))
    first_episode(engine)
    assert engine.assert_fact(signal("a1", "a", 5)) == []
    assert engine.retract_fact("a1") == []
    assert engine.advance(15) == [] and engine.advance(100) == []


def test_deferred_match_whose_ttl_ended_by_then_does_not_fire(
    engine_cls: type[EngineCore],
) -> None:
    engine = engine_with(engine_cls, throttled("r"), ttl=12.0)
    first_episode(engine)
    assert engine.assert_fact(signal("a1", "a", 5)) == []  # its TTL ends at 17
    assert engine.advance(20) == []  # one step past both the window end and the TTL
    assert engine.facts() == []


def test_persisting_or_updated_facts_of_the_fired_episode_never_fire_again(
    engine_cls: type[EngineCore],
) -> None:
    engine = engine_with(engine_cls, throttled("r"))
    assert len(engine.assert_fact(signal("a0", "a", 0))) == 1
    assert engine.assert_fact(signal("a0", "a", 5, score=0.99)) == []  # an update
    assert engine.assert_fact(signal("a1", "a", 6)) == []  # same episode, a co-detection
    assert engine.retract_fact("a0") == []  # a1 carries the episode on
    assert engine.assert_fact(signal("a2", "a", 7)) == []
    for now in (15, 30, 45, 1000):
        assert engine.advance(now) == []


def test_a_node_down_again_under_the_same_fact_id_is_a_new_episode(
    engine_cls: type[EngineCore],
) -> None:
    engine = engine_with(engine_cls, throttled("down", DOWN))
    down = Fact("health:probe:a", "health", {"node": "a", "status": "down"}, 100)
    assert len(engine.assert_fact(down)) == 1
    assert engine.retract_fact(down.id) == []  # recovered
    again = Fact(down.id, "health", {"node": "a", "status": "down"}, 108)
    assert engine.assert_fact(again) == []  # crashed again inside the quiet period
    (firing,) = engine.advance(115)
    assert firing.params["node"] == "a" and firing.facts[0]["id"] == down.id


def test_keys_are_independent(engine_cls: type[EngineCore]) -> None:
    engine = engine_with(engine_cls, throttled("r"))
    first_episode(engine, "a")  # a's quiet period: 0-15
    assert len(engine.advance(5) + engine.assert_fact(signal("b0", "b", 5))) == 1  # b: 5-20
    engine.retract_fact("b0")
    assert engine.assert_fact(signal("a1", "a", 6)) == []
    assert engine.assert_fact(signal("b1", "b", 7)) == []
    assert [(f.params["node"], f.at) for f in engine.advance(15)] == [("a", 15)]
    assert engine.advance(19) == []
    assert [(f.params["node"], f.at) for f in engine.advance(20)] == [("b", 20)]


def test_flapping_fires_once_per_window_with_the_latest_match(
    engine_cls: type[EngineCore],
) -> None:
    engine = engine_with(engine_cls, throttled("r"))
    firings: list[Firing] = []
    for second in range(41):  # a new signal every second, the previous one cleared
        firings += engine.advance(second)
        if second:
            firings += engine.retract_fact(f"a{second - 1}")
        firings += engine.assert_fact(signal(f"a{second}", "a", second))
    firings += engine.advance(45)
    assert [(f.at, ids(f)) for f in firings] == [
        (0, ["a0"]),
        (15, ["a14"]),
        (30, ["a29"]),
        (45, ["a40"]),
    ]


def test_a_later_fact_releases_the_due_match_before_its_own(
    engine_cls: type[EngineCore],
) -> None:
    engine = engine_with(engine_cls, throttled("r"))
    first_episode(engine)
    assert engine.assert_fact(signal("a1", "a", 5)) == []
    got = engine.assert_fact(signal("b1", "b", 20))
    assert [(f.params["node"], f.at) for f in got] == [("a", 20), ("b", 20)]


def test_due_firings_are_ordered_by_priority(engine_cls: type[EngineCore]) -> None:
    engine = engine_with(engine_cls, throttled("lo", priority=1), throttled("hi", priority=5))
    first_episode(engine)
    assert engine.assert_fact(signal("a1", "a", 5)) == []
    assert [f.rule for f in engine.advance(15)] == ["hi", "lo"]


def test_count_window_refused_by_the_throttle_fires_with_its_facts(
    engine_cls: type[EngineCore],
) -> None:
    rule = throttled("c", count=CountWindow(2, 100.0, (Ref("s", "node"),)))
    engine = engine_with(engine_cls, rule)
    engine.assert_fact(signal("a0", "a", 0))
    assert len(engine.assert_fact(signal("a1", "a", 1))) == 1
    engine.retract_fact("a0")
    engine.retract_fact("a1")
    engine.assert_fact(signal("a2", "a", 5))
    assert engine.assert_fact(signal("a3", "a", 6)) == []  # window full, throttle refuses
    (firing,) = engine.advance(16)
    assert ids(firing) == ["a2", "a3"]


def test_reload_keeps_deferred_matches_of_unchanged_rules_only(
    engine_cls: type[EngineCore],
) -> None:
    kept, changed, gone = throttled("kept"), throttled("changed"), throttled("gone")
    engine = engine_with(engine_cls, kept, changed, gone)
    first_episode(engine)
    assert engine.assert_fact(signal("a1", "a", 5)) == []
    engine.load(RuleSet("t2", (kept, throttled("changed", priority=3))))
    assert engine.advance(10) == []  # no rule is new: the replay fires nothing
    assert [f.rule for f in engine.advance(15)] == ["kept"]


def test_gate_state_is_released(engine_cls: type[EngineCore]) -> None:
    engine = engine_with(engine_cls, throttled("r"), ttl=50.0)
    first_episode(engine)
    engine.assert_fact(signal("a1", "a", 5))
    assert len(engine.advance(15)) == 1
    engine.assert_fact(signal("a2", "a", 16))
    engine.advance(1000)
    gate = engine._gate
    assert gate.deferred == {} and gate.throttled == {} and gate.episodes == {}
    assert engine.facts() == [] and engine._born == {}
