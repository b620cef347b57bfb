"""Long run: memory stays flat while facts are asserted and retracted through the wrapper.

By default a short run (``SELFHEAL_LONG_FACTS`` facts, 20,000 unless set) keeps ``make test``
fast; CI sets ``SELFHEAL_LONG=1`` for the full 1,000,000 facts (about a minute on 2 cores).
Memory is the process RSS (durable-rules allocates in C, out of tracemalloc's sight), read at
checkpoints after a warm-up; every store the wrapper keeps must also end empty.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.model import Fact, FactValue
from selfheal_kg.paths import shipped

FULL = 1_000_000
SHORT = int(os.environ.get("SELFHEAL_LONG_FACTS", "20000"))
FACTS = FULL if os.environ.get("SELFHEAL_LONG") == "1" else SHORT
# Allowed RSS growth after the warm-up: a leak of 16 bytes per fact over 1M facts exceeds it,
# a leak of one retained durable fact (~8.5 KB) per 1,000 facts too.
MAX_GROWTH = 12 << 20
STATM = Path("/proc/self/statm")


def rss() -> int:
    """Return this process's resident set size in bytes (Linux)."""
    return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def signal(i: int) -> Fact:
    """Every other fact is an error-ratio signal that a shipped rule matches."""
    attrs: dict[str, FactValue] = {
        "node": f"n{i}",
        "metric": "http.server.error.ratio" if i % 2 else "other",
        "detector": "d",
        "direction": "up",
        "score": 0.9,
        "onset": float(i),
    }
    return Fact(f"f{i}", "signal", attrs, float(i))


@pytest.mark.skipif(not STATM.exists(), reason="reads RSS from /proc")
def test_memory_stays_flat_over_many_asserted_and_retracted_facts() -> None:
    engine = DurableRuleEngine(name="longrun", ttl=60.0)
    engine.load(load_rules(shipped("rules")))
    per_match = len(engine.assert_fact(signal(1)))
    engine.retract_fact("f1")
    assert per_match > 0

    warm_up = max(FACTS // 10, 1_000)
    checkpoints: list[int] = []
    firings = 0
    for i in range(2, FACTS + 2):
        fact = signal(i)
        firings += len(engine.assert_fact(fact))
        engine.retract_fact(fact.id)
        if i % 1_000 == 0:
            engine.advance(float(i))  # expires the TTL bookkeeping of retracted facts
        if i >= warm_up and i % warm_up == 0:
            checkpoints.append(rss())

    assert firings == per_match * (FACTS // 2)
    assert engine.facts() == []
    assert engine.durable_facts() == []
    assert len(engine._heap) <= 1_100  # TTL entries of retracted facts: one advance apart
    assert checkpoints, "the run is too short to measure"
    assert max(checkpoints) - checkpoints[0] <= MAX_GROWTH, [c >> 20 for c in checkpoints]


def test_facts_no_rule_tests_are_not_held_and_retract_cleanly() -> None:
    engine = DurableRuleEngine(name="held")
    engine.load(load_rules(shipped("rules")))
    assert engine.assert_fact(signal(0)) == []  # "other": durable does not store it
    assert engine.assert_fact(signal(1)) != []
    assert [f["id"] for f in engine.durable_facts()] == ["f1"]
    engine.load(load_rules(shipped("rules")))  # replayed into the new version
    assert [f["id"] for f in engine.durable_facts()] == ["f1"]
    assert engine.retract_fact("f0") == []
    assert engine.retract_fact("f1") == []
    assert engine.durable_facts() == []
    engine.assert_fact(signal(1))  # retracted for real: durable takes it again
    assert [f["id"] for f in engine.durable_facts()] == ["f1"]
