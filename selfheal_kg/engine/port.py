"""The RuleEngine port and the engine-side semantics every adapter shares.

An adapter only has to find *matches* (a rule's alternative newly satisfied by some facts):
``Matcher``. ``EngineCore`` wraps a matcher with what the rule language promises on top of
plain matching, identically for every engine:

- the fact map (explicit ids; re-asserting an id with new content replaces the fact),
- fact TTLs, expired by ``advance(now)`` (no background threads),
- count windows ("3 matches within 300 s per node") and throttles (at most once per window
  per key; the latest match refused during the window fires when it ends, if its facts are
  still alive: a trailing edge, like Alertmanager's ``group_interval``), which durable-rules
  cannot express,
- action parameters resolved from the matched facts, errors surfaced as ``RuleActionError``,
- reload: compile first, swap only if valid, replay the facts into the new rules.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, TypeVar

from selfheal_kg.engine.gate import Gate, Group, Match, group_key
from selfheal_kg.engine.ir import Ref, Rule, RuleSet
from selfheal_kg.engine.rules import validate_ruleset
from selfheal_kg.errors import RuleActionError
from selfheal_kg.model import Fact, FactValue, Firing


class RuleEngine(Protocol):
    """Turns facts into firings of registered actions; time moves only through ``advance``."""

    def load(self, ruleset: RuleSet) -> None:
        """Compile and swap in ``ruleset``; keep the old rules on ``RuleLoadError``."""
        ...

    def assert_fact(self, fact: Fact) -> list[Firing]:
        """Add (or replace) a fact and return the firings it causes."""
        ...

    def retract_fact(self, fact_id: str) -> list[Firing]:
        """Remove a fact (unknown ids are ignored) and return the firings it causes."""
        ...

    def advance(self, now: float) -> list[Firing]:
        """Move engine time to ``now``: expire facts and windows, return due firings."""
        ...

    def facts(self) -> list[Fact]:
        """Return the live facts, oldest first."""
        ...

    @property
    def ruleset(self) -> RuleSet | None:
        """The rules in force, or ``None`` before the first load."""
        ...




class Matcher(Protocol):
    """What an engine adapter implements: incremental matching of one compiled rule set."""

    def assert_fact(self, fact: Fact) -> list[Match]:
        """Add a fact (its id is new to the matcher) and return the new matches."""
        ...

    def retract_fact(self, fact: Fact) -> list[Match]:
        """Remove a fact and return matches it unblocks (``not`` patterns)."""
        ...

    def close(self) -> None:
        """Release the compiled rules."""
        ...


_T = TypeVar("_T")


class EngineCore(ABC):
    """A ``RuleEngine`` built on a ``Matcher``; subclasses only compile rule sets."""

    def __init__(
        self, *, ttl: float | None = None, ttl_by_type: Mapping[str, float] | None = None
    ) -> None:
        self._lock = threading.RLock()
        self._ttl = ttl
        self._ttl_by_type = dict(ttl_by_type or {})
        self._facts: dict[str, Fact] = {}
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._born: dict[str, int] = {}  # fact id → incarnation (see engine.gate.Gate)
        self._births = itertools.count()
        self._gate = Gate(self._born)
        self._pending: list[Firing] = []
        self._rules: dict[str, Rule] = {}
        self._ruleset: RuleSet | None = None
        self._matcher: Matcher | None = None
        self._now = float("-inf")

    @abstractmethod
    def _build(self, ruleset: RuleSet) -> Matcher:
        """Compile ``ruleset`` into a fresh matcher (raise ``RuleLoadError`` if impossible)."""

    @property
    def ruleset(self) -> RuleSet | None:
        """The rules in force, or ``None`` before the first load."""
        return self._ruleset

    def load(self, ruleset: RuleSet) -> None:
        """Compile, replay the live facts into the new rules, then swap.

        Firings that replay produces for rules whose id is new are returned by the next
        ``advance``; rules that existed before already saw these facts. Count windows restart;
        throttles of surviving ids go on; deferred matches survive only for unchanged rules
        (a changed rule may bind other aliases or no longer match those facts).
        """
        validate_ruleset(ruleset)
        with self._lock:
            matcher = self._build(ruleset)
            try:
                matches = [m for f in self._facts.values() for m in matcher.assert_fact(f)]
            except BaseException:
                matcher.close()
                raise
            old_ids = self._ruleset.ids() if self._ruleset else frozenset()
            same = frozenset(r.id for r in ruleset.rules if self._rules.get(r.id) == r)
            old, self._matcher, self._ruleset = self._matcher, matcher, ruleset
            self._rules = {r.id: r for r in ruleset.rules}
            if old is not None:
                old.close()
            self._gate.windows.clear()
            self._gate.expire(self._rules, self._now)
            self._gate.keep_deferred(same)
            self._pending.extend(self._fire(m for m in matches if m.rule not in old_ids))

    def assert_fact(self, fact: Fact) -> list[Firing]:
        """Add (or replace, same id new content) a fact; return the firings it causes.

        If the fact's time moves engine time past the end of a quiet period, the deferred
        match fires first (the fact came after the window ended) and is returned too.
        """
        with self._lock:
            self._now = max(self._now, fact.at)
            firings = self._release() if self._gate.deferred else []
            old = self._facts.get(fact.id)
            born = next(self._births) if old is None else self._born[fact.id]
            if old is not None:
                if old == fact:
                    return _ordered(firings)
                firings += self._retract(old)
            self._born[fact.id] = born  # an update keeps the incarnation of the fact it replaces
            self._facts[fact.id] = fact
            self._schedule_expiry(fact)
            if self._matcher is not None:
                firings += self._fire(self._matcher.assert_fact(fact))
            return _ordered(firings)

    def retract_fact(self, fact_id: str) -> list[Firing]:
        """Remove a fact; unknown ids are ignored. Return the firings it unblocks."""
        with self._lock:
            fact = self._facts.get(fact_id)
            return _ordered(self._retract(fact)) if fact is not None else []

    def advance(self, now: float) -> list[Firing]:
        """Move engine time to ``now``: fire due deferred matches, then expire facts."""
        with self._lock:
            self._now = max(self._now, now)
            firings, self._pending = self._pending, []
            firings += self._release()
            while self._heap and self._heap[0][0] <= self._now:
                expiry, fact_id = heapq.heappop(self._heap)
                fact = self._facts.get(fact_id)
                if fact is not None and self._expiry.get(fact_id) == expiry:
                    firings += self._retract(fact)
            self._gate.expire(self._rules, self._now)
            return _ordered(firings)

    def facts(self) -> list[Fact]:
        """Return the live facts, oldest first."""
        with self._lock:
            return list(self._facts.values())

    def _schedule_expiry(self, fact: Fact) -> None:
        ttl = self._ttl_by_type.get(fact.type, self._ttl)
        if ttl is None:
            self._expiry.pop(fact.id, None)
            return
        self._expiry[fact.id] = fact.at + ttl
        heapq.heappush(self._heap, (fact.at + ttl, fact.id))

    def _retract(self, fact: Fact) -> list[Firing]:
        del self._facts[fact.id]
        del self._born[fact.id]
        self._expiry.pop(fact.id, None)
        self._gate.forget_fact(fact.id)
        if self._matcher is None:
            return []
        return self._fire(self._matcher.retract_fact(fact))

    def _fire(self, matches: Iterable[Match]) -> list[Firing]:
        if not matches:  # the common case (an empty list): no rule newly satisfied
            return []
        firings: list[Firing] = []
        for match in matches:
            rule = self._rules[match.rule]
            try:  # inline, not _surfaced: this is the hot path
                firings += self._gated(rule, match)
            except RuleActionError:
                raise
            except Exception as exc:
                raise RuleActionError(rule.id, _action_names(rule), exc) from exc
        return firings

    def _release(self) -> list[Firing]:
        """Fire the deferred groups whose quiet period ended, if their facts live on now."""
        firings: list[Firing] = []
        for (rule_id, key), group in self._gate.due(self._now):
            rule = self._rules.get(rule_id)
            if rule is None or rule.throttle is None or not all(map(self._alive_now, group)):
                continue  # rule gone, or a fact's TTL ended by now (retraction dropped it)
            self._gate.allow(rule, key, group, self._now)  # starts the next quiet period
            firings += _surfaced(self._emit, rule, group)
        return firings

    def _gated(self, rule: Rule, match: Match) -> list[Firing]:
        bound = self._bound(match)
        group: Group = (match,)
        if rule.count is not None:
            window = self._gate.count(rule, group_key(rule.count.group_by, bound), match, self._now)
            if not window:
                return []
            group = tuple(window)
        throttle = rule.throttle
        if throttle is not None and not self._gate.allow(
            rule, group_key(throttle.group_by, bound), group, self._now
        ):
            return []
        return self._emit(rule, group, bound)

    def _emit(
        self, rule: Rule, group: Group, bound: Mapping[str, Mapping[str, FactValue]] | None = None
    ) -> list[Firing]:
        """Build the firings of ``group``, whose last match is the one that completed it."""
        match = group[-1]
        if bound is None:
            bound = self._bound(match)
        if len(group) == 1:  # no window: the match's own facts
            facts = _unique_facts((bound,))
        else:
            facts = _unique_facts(self._bound(m) for m in group if self._alive(m))
        return [self._firing(rule, call.name, call.params, bound, facts) for call in rule.actions]

    def _firing(
        self,
        rule: Rule,
        action: str,
        params: tuple[tuple[str, FactValue | Ref], ...],
        bound: Mapping[str, Mapping[str, FactValue]],
        facts: tuple[Mapping[str, FactValue], ...],
    ) -> Firing:
        try:
            values = {k: bound[v.alias][v.field] if isinstance(v, Ref) else v for k, v in params}
        except KeyError as exc:
            raise RuleActionError(rule.id, action, exc) from exc
        return Firing(rule.id, action, values, facts, self._now, rule.priority)

    def _alive(self, match: Match) -> bool:
        return all(fid in self._facts for _, fid in match.bound)

    def _alive_now(self, match: Match) -> bool:
        """Return whether every fact of ``match`` exists and its TTL has not ended by now."""
        expiry = self._expiry
        return self._alive(match) and all(
            expiry.get(fid, math.inf) > self._now for _, fid in match.bound
        )

    def _bound(self, match: Match) -> dict[str, dict[str, FactValue]]:
        return {alias: self._facts[fid].as_dict() for alias, fid in match.bound}


def _unique_facts(
    groups: Iterable[Mapping[str, Mapping[str, FactValue]]],
) -> tuple[Mapping[str, FactValue], ...]:
    seen: dict[FactValue, Mapping[str, FactValue]] = {}
    for bound in groups:
        for fact in bound.values():
            seen.setdefault(fact["id"], fact)
    return tuple(seen.values())


def _surfaced(step: Callable[[Rule, _T], list[Firing]], rule: Rule, arg: _T) -> list[Firing]:
    """Return ``step(rule, arg)``, raising any failure as ``RuleActionError``."""
    try:
        return step(rule, arg)
    except RuleActionError:
        raise
    except Exception as exc:
        raise RuleActionError(rule.id, _action_names(rule), exc) from exc


def _action_names(rule: Rule) -> str:
    return ",".join(call.name for call in rule.actions)


def _ordered(firings: list[Firing]) -> list[Firing]:
    if len(firings) < 2:  # the common case: nothing to order, skip building sort keys
        return firings
    return sorted(firings, key=_order_key)


def _order_key(firing: Firing) -> tuple[int, str, str, str, tuple[str, ...]]:
    params = repr(sorted(firing.params.items(), key=lambda kv: kv[0]))
    ids = tuple(str(f["id"]) for f in firing.facts)
    return (-firing.priority, firing.rule, firing.action, params, ids)
