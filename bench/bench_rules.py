"""Facts/s through DurableRuleEngine beside raw durable-rules, in one run.

Usage: .venv/bin/python bench/bench_rules.py [N] [ROUNDS]
Each fact is asserted then retracted; one shipped rule matches every other fact. Raw and
wrapped runs alternate for ROUNDS rounds and the best of each is kept, so that a busy
machine slows both sides alike rather than whichever ran second; rates are per CPU-second
of this process (per core), not wall time.
"""

from __future__ import annotations

import sys
import time

from durable import engine as durable_engine

from selfheal_kg.engine.compile_durable import compile_ruleset
from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.rules import load_rules
from selfheal_kg.model import Fact, FactValue
from selfheal_kg.paths import shipped


class _Host(durable_engine.Host):  # type: ignore[misc]
    def _run(self) -> None:
        pass


def _fact(i: int) -> Fact:
    metric = "http.server.error.ratio" if i % 2 else "other"
    attrs: dict[str, FactValue] = {
        "node": f"n{i}",
        "metric": metric,
        "detector": "d",
        "direction": "up",
        "score": 0.9,
        "onset": float(i),
    }
    return Fact(f"f{i}", "signal", attrs, float(i))


def bench_wrapper(n: int) -> float:
    engine = DurableRuleEngine(name="bench")
    engine.load(load_rules(shipped("rules")))
    start = time.process_time()
    for i in range(n):
        fact = _fact(i)
        engine.assert_fact(fact)
        engine.retract_fact(fact.id)
    return n / (time.process_time() - start)


def bench_raw(n: int) -> float:
    program = compile_ruleset(load_rules(shipped("rules")))
    host = _Host()
    definition = {k: {**v, "run": lambda c: None} for k, v in program.definition.items()}
    host.register_rulesets({"raw": definition})
    start = time.process_time()
    for i in range(n):
        msg = {**_fact(i).as_dict(), "sid": "0"}
        try:
            host.assert_fact("raw", msg)
        except durable_engine.MessageNotHandledException:
            continue
        host.retract_fact("raw", msg)
    return n / (time.process_time() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    raw = wrapped = 0.0
    for _ in range(rounds):
        raw, wrapped = max(raw, bench_raw(n)), max(wrapped, bench_wrapper(n))
    print(f"raw durable-rules:  {raw:10.0f} facts/s (assert + retract)")
    print(f"DurableRuleEngine:  {wrapped:10.0f} facts/s (assert + retract)")
    print(f"ratio wrapper/raw:  {wrapped / raw:10.2f}")


if __name__ == "__main__":
    main()
