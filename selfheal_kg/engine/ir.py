"""The engine-neutral rule IR: typed, frozen values that any rule engine can compile.

Rule files are parsed into these values (``rules.py``); ``compile_durable.py`` turns them into
a durable-rules ruleset and ``reference.py`` interprets them directly. Nothing here knows about
a particular engine, so the engine can be replaced (ansible-rulebook moved from durable-rules
to Drools through such an IR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selfheal_kg.model import FactValue

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "matches"]
OPS: tuple[Op, ...] = ("==", "!=", "<", "<=", ">", ">=", "in", "matches")

#: Fields a rule may test, per fact type (``id`` and ``type`` are on every fact).
FACT_FIELDS: dict[str, frozenset[str]] = {
    "signal": frozenset({"node", "metric", "detector", "direction", "score", "onset", "change"}),
    "health": frozenset({"node", "status", "source"}),
    "alert": frozenset({"node", "alertname", "severity"}),
    "calls": frozenset({"caller", "callee"}),
}
COMMON_FIELDS = frozenset({"id", "type"})


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a field of a fact bound earlier in the same rule (``s.node``)."""

    alias: str
    field: str

    def __str__(self) -> str:
        return f"{self.alias}.{self.field}"


Operand = FactValue | Ref | tuple[FactValue, ...]


@dataclass(frozen=True, slots=True)
class FieldTest:
    """One test on one field of a fact: ``field op value``."""

    field: str
    op: Op
    value: Operand


@dataclass(frozen=True, slots=True)
class Pattern:
    """A fact of ``fact_type`` whose fields pass every test, bound to ``alias``."""

    alias: str
    fact_type: str
    tests: tuple[FieldTest, ...] = ()


@dataclass(frozen=True, slots=True)
class Conjunction:
    """Facts matching every pattern (joined through refs) while no ``absent`` pattern matches."""

    patterns: tuple[Pattern, ...]
    absent: tuple[Pattern, ...] = ()

    def aliases(self) -> tuple[str, ...]:
        """Return the aliases bound by this conjunction, in order."""
        return tuple(p.alias for p in self.patterns)


@dataclass(frozen=True, slots=True)
class ActionCall:
    """A registered action with literal or referenced parameters."""

    name: str
    params: tuple[tuple[str, FactValue | Ref], ...]


@dataclass(frozen=True, slots=True)
class CountWindow:
    """Fire only when ``at_least`` matches with one group key occur within ``within`` seconds."""

    at_least: int
    within: float
    group_by: tuple[Ref, ...] = ()


@dataclass(frozen=True, slots=True)
class Throttle:
    """Fire at most once per ``once_within`` seconds per group key."""

    once_within: float
    group_by: tuple[Ref, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: any of its alternatives matching runs its actions (after count and throttle).

    ``alternatives`` is the rule's condition in disjunctive form: ``any`` of conjunctions.
    """

    id: str
    alternatives: tuple[Conjunction, ...]
    actions: tuple[ActionCall, ...]
    description: str = ""
    priority: int = 0
    count: CountWindow | None = None
    throttle: Throttle | None = None
    source_file: str = ""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A named set of rules with unique ids."""

    name: str
    rules: tuple[Rule, ...] = field(default=())

    def rule(self, rule_id: str) -> Rule:
        """Return the rule with ``rule_id`` (``KeyError`` if unknown)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def ids(self) -> frozenset[str]:
        """Return the ids of every rule."""
        return frozenset(r.id for r in self.rules)
