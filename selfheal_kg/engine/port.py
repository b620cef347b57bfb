"""The RuleEngine port and the engine-side semantics every adapter shares.

An adapter only has to find *matches* (a rule's alternative newly satisfied by some facts):
``Matcher``. ``EngineCore`` wraps a matcher with what the rule language promises on top of
plain matching, identically for every engine:

- the fact map (explicit ids; re-asserting an id with new content replaces the fact),
- fact TTLs, expired by ``advance(now)`` (no background threads),
- count windows ("3 matches within 300 s per node") and throttles (once per window per key),
  which durable-rules cannot express,
- action parameters resolved from the matched facts, errors surfaced as ``RuleActionError``,
- reload: compile first, swap only if valid, replay the facts into the new rules.
"""

from __future__ import annotations

import heapq
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
class Match:
    """A rule newly satisfied: the fact id bound to each alias of one alternative."""

    rule: str
    bound: tuple[tuple[str, str], ...]


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


def _key(refs: tuple[Ref, ...], bound: Mapping[str, Mapping[str, FactValue]]) -> tuple[str, ...]:
    return tuple(str(bound[r.alias][r.field]) for r in refs)


class _Gate:
    """Count windows and throttles, per rule and group key, on engine time."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, tuple[str, ...]], deque[tuple[float, Match]]] = {}
        self.throttled: dict[tuple[str, tuple[str, ...]], float] = {}

    def count(self, rule: Rule, key: tuple[str, ...], match: Match, now: float) -> list[Match]:
        """Record ``match``; return the window's matches once it holds enough, else ``[]``."""
        assert rule.count is not None
        window = self.windows.setdefault((rule.id, key), deque())
        window.append((now, match))
        self._prune(window, rule.count.within, now)
        if len(window) < rule.count.at_least:
            return []
        del self.windows[(rule.id, key)]
        return [m for _, m in window]

    def allow(self, rule: Rule, key: tuple[str, ...], now: float) -> bool:
        """Return whether ``rule`` may fire for ``key`` now, and if so start its quiet period."""
        assert rule.throttle is not None
        until = self.throttled.get((rule.id, key))
        if until is not None and now < until:
            return False
        self.throttled[(rule.id, key)] = now + rule.throttle.once_within
        return True

    def forget_fact(self, fact_id: str) -> None:
        """Drop counted matches that used a retracted fact."""
        if not self.windows:
            return
        for key, window in list(self.windows.items()):
            kept = deque(e for e in window if all(fid != fact_id for _, fid in e[1].bound))
            self._store(key, kept)

    def expire(self, rules: Mapping[str, Rule], now: float) -> None:
        """Drop matches older than their window and throttles that ended (bounded memory)."""
        for key, window in list(self.windows.items()):
            rule = rules.get(key[0])
            if rule is None or rule.count is None:
                del self.windows[key]
                continue
            self._prune(window, rule.count.within, now)
            self._store(key, window)
        for tkey, until in list(self.throttled.items()):
            if until <= now or tkey[0] not in rules:
                del self.throttled[tkey]

    def _store(self, key: tuple[str, tuple[str, ...]], window: deque[tuple[float, Match]]) -> None:
        if window:
            self.windows[key] = window
        else:
            self.windows.pop(key, None)

    @staticmethod
    def _prune(window: deque[tuple[float, Match]], within: float, now: float) -> None:
        while window and window[0][0] <= now - within:
            window.popleft()


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
        self._gate = _Gate()
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
        ``advance``; rules that existed before already saw these facts. Count windows restart.
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
            old, self._matcher, self._ruleset = self._matcher, matcher, ruleset
            self._rules = {r.id: r for r in ruleset.rules}
            if old is not None:
                old.close()
            self._gate.windows.clear()
            self._gate.expire(self._rules, self._now)
            self._pending.extend(self._fire(m for m in matches if m.rule not in old_ids))

    def assert_fact(self, fact: Fact) -> list[Firing]:
        """Add (or replace, same id new content) a fact; return the firings it causes."""
        with self._lock:
            self._now = max(self._now, fact.at)
            old = self._facts.get(fact.id)
            firings: list[Firing] = []
            if old is not None:
                if old == fact:
                    return []
                firings = self._retract(old)
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
        """Move engine time to ``now``; expire facts, windows and throttles."""
        with self._lock:
            self._now = max(self._now, now)
            firings, self._pending = self._pending, []
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
            try:
                firings += self._gated(rule, match)
            except RuleActionError:
                raise
            except Exception as exc:
                raise RuleActionError(rule.id, _action_names(rule), exc) from exc
        return firings

    def _gated(self, rule: Rule, match: Match) -> list[Firing]:
        bound = self._bound(match)
        group = [match]
        if rule.count is not None:
            group = self._gate.count(rule, _key(rule.count.group_by, bound), match, self._now)
            if not group:
                return []
        throttle = rule.throttle
        if throttle is not None and not self._gate.allow(
            rule, _key(throttle.group_by, bound), self._now
        ):
            return []
        if len(group) == 1 and group[0] is match:  # no window: the match's own facts
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
