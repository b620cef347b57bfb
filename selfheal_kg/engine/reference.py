"""A small pure-Python engine over the same IR, used to cross-check the durable adapter.

It recomputes every rule's satisfied combinations after each change and reports the ones
that are new (a combination fires when it becomes satisfied, as in durable-rules: again
after a ``not`` blocker goes away). Quadratic and simple on purpose: tests, not production.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from selfheal_kg.engine.gate import Match
from selfheal_kg.engine.ir import Conjunction, FieldTest, Pattern, Ref, RuleSet
from selfheal_kg.engine.port import EngineCore, Matcher
from selfheal_kg.model import Fact, FactValue

Bound = dict[str, Mapping[str, FactValue]]
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def field_passes(test: FieldTest, fact: Mapping[str, FactValue], bound: Bound) -> bool:
    """Return whether ``fact`` passes ``test`` (missing fields and type clashes fail)."""
    if test.field not in fact:
        return False
    value = fact[test.field]
    if test.op == "in":
        assert isinstance(test.value, tuple)
        return value in test.value
    if test.op == "matches":
        return isinstance(value, str) and re.fullmatch(str(test.value), value) is not None
    return _compare(test.op, value, _operand(test.value, bound))


def _compare(op: str, value: object, other: object) -> bool:
    if other is None:
        return False
    if isinstance(value, bool) != isinstance(other, bool):
        return op == "!="
    try:
        return _CMP[op](value, other)
    except TypeError:
        return False


def _operand(value: object, bound: Bound) -> object:
    if not isinstance(value, Ref):
        return value
    return bound[value.alias].get(value.field)


def pattern_matches(pattern: Pattern, fact: Mapping[str, FactValue], bound: Bound) -> bool:
    """Return whether ``fact`` matches ``pattern`` given the facts bound so far."""
    return fact.get("type") == pattern.fact_type and all(
        field_passes(t, fact, bound) for t in pattern.tests
    )


def combinations(conj: Conjunction, facts: list[Mapping[str, FactValue]]) -> Iterator[Bound]:
    """Yield every binding of ``conj``'s patterns to facts that no ``absent`` pattern blocks."""

    def extend(index: int, bound: Bound) -> Iterator[Bound]:
        if index == len(conj.patterns):
            if not any(pattern_matches(p, f, bound) for p in conj.absent for f in facts):
                yield dict(bound)
            return
        pattern = conj.patterns[index]
        for fact in facts:
            if pattern_matches(pattern, fact, bound):
                bound[pattern.alias] = fact
                yield from extend(index + 1, bound)
                del bound[pattern.alias]

    return extend(0, {})


class ReferenceMatcher:
    """Naive incremental matching: diff of satisfied combinations before/after a change."""

    def __init__(self, ruleset: RuleSet) -> None:
        self._ruleset = ruleset
        self._facts: dict[str, Mapping[str, FactValue]] = {}
        self._satisfied: set[tuple[str, int, tuple[tuple[str, str], ...]]] = set()

    def assert_fact(self, fact: Fact) -> list[Match]:
        """Add ``fact`` and return the combinations it newly satisfies."""
        self._facts[fact.id] = fact.as_dict()
        return self._update()

    def retract_fact(self, fact: Fact) -> list[Match]:
        """Remove ``fact`` and return the combinations it unblocks."""
        self._facts.pop(fact.id, None)
        return self._update()

    def close(self) -> None:
        """Forget everything."""
        self._facts.clear()
        self._satisfied.clear()

    def _update(self) -> list[Match]:
        facts = list(self._facts.values())
        now: set[tuple[str, int, tuple[tuple[str, str], ...]]] = set()
        fresh: list[Match] = []
        for rule in self._ruleset.rules:
            for index, conj in enumerate(rule.alternatives):
                for bound in combinations(conj, facts):
                    ids = tuple((a, str(bound[a]["id"])) for a in conj.aliases())
                    key = (rule.id, index, ids)
                    now.add(key)
                    if key not in self._satisfied:
                        fresh.append(Match(rule.id, ids))
        self._satisfied = now
        return fresh


class ReferenceEngine(EngineCore):
    """A ``RuleEngine`` over the IR in pure Python (tests and cross-checks)."""

    def _build(self, ruleset: RuleSet) -> Matcher:
        return ReferenceMatcher(ruleset)
