"""Count windows and throttles of the rule engine, per rule and group key, on engine time.

The wrapper ``selfheal_kg.engine.port.EngineCore`` applies them for every engine (durable-rules
knows no time window or group key). docs/rules.md states the semantics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from selfheal_kg.engine.ir import Ref, Rule
from selfheal_kg.model import FactValue


@dataclass(frozen=True, slots=True)
class Match:
    """A rule newly satisfied: the fact id bound to each alias of one alternative."""

    rule: str
    bound: tuple[tuple[str, str], ...]


GateKey = tuple[str, tuple[str, ...]]  # (rule id, group key)
Group = tuple[Match, ...]  # what one firing reports: a match, or a count window's matches
Member = tuple[tuple[str, int], ...]  # a group's facts as (fact id, incarnation)


def group_key(
    refs: tuple[Ref, ...], bound: Mapping[str, Mapping[str, FactValue]]
) -> tuple[str, ...]:
    """Return the group key of a match: the values of ``refs`` in its bound facts."""
    return tuple(str(bound[r.alias][r.field]) for r in refs)


def _uses(group: Group, fact_id: str) -> bool:
    return any(fid == fact_id for match in group for _, fid in match.bound)


class Gate:
    """Count windows and throttles, per rule and group key, on engine time.

    A throttle's quiet period belongs to the *episode* that fired: the group that fired and
    the groups refused while one of them still lived (``episodes``: co-detections, such as one
    fault seen by a second instance). A group refused once that episode ended is a new one:
    the latest such group is ``deferred`` (one per key: memory bounded by rules times keys)
    and fires when the quiet period ends (``due``). ``born`` is the engine's map of fact id to
    incarnation: retracted and asserted again is a new fact; re-asserted with new content,
    the same one updated.
    """

    def __init__(self, born: Mapping[str, int]) -> None:
        self._born = born
        self.windows: dict[GateKey, deque[tuple[float, Match]]] = {}
        self.throttled: dict[GateKey, float] = {}
        self.episodes: dict[GateKey, list[Member]] = {}
        self.deferred: dict[GateKey, Group] = {}

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

    def allow(self, rule: Rule, key: tuple[str, ...], group: Group, now: float) -> bool:
        """Return whether ``rule`` may fire ``group`` for ``key`` now (starting a quiet period).

        A refused group joins the quiet period's episode while that lives, else it becomes
        the key's deferred group (replacing an earlier one).
        """
        assert rule.throttle is not None
        gkey = (rule.id, key)
        until = self.throttled.get(gkey)
        if until is None or now >= until:
            self.throttled[gkey] = now + rule.throttle.once_within
            self.episodes[gkey] = [self._member(group)]
            return True
        ongoing = [m for m in self.episodes.get(gkey, ()) if self._lives(m)]
        if ongoing:
            ongoing.append(self._member(group))
        else:
            self.deferred[gkey] = group
        self.episodes[gkey] = ongoing
        return False

    def due(self, now: float) -> list[tuple[GateKey, Group]]:
        """Remove and return the deferred groups whose quiet period is over, in key order."""
        if not self.deferred:  # the common case
            return []
        ready = sorted(k for k in self.deferred if self.throttled.get(k, now) <= now)
        return [(k, self.deferred.pop(k)) for k in ready]

    def keep_deferred(self, rule_ids: frozenset[str]) -> None:
        """Drop the deferred groups of every rule not in ``rule_ids``."""
        for key in [k for k in self.deferred if k[0] not in rule_ids]:
            del self.deferred[key]

    def forget_fact(self, fact_id: str) -> None:
        """Drop counted matches and deferred groups that used a retracted fact."""
        if self.deferred:
            for dkey in [k for k, group in self.deferred.items() if _uses(group, fact_id)]:
                del self.deferred[dkey]
        if not self.windows:
            return
        for key, window in list(self.windows.items()):
            kept = deque(e for e in window if all(fid != fact_id for _, fid in e[1].bound))
            self._store(key, kept)

    def expire(self, rules: Mapping[str, Rule], now: float) -> None:
        """Drop matches older than their window, throttles that ended, unknown rules' state."""
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
                self.episodes.pop(tkey, None)
        self.keep_deferred(frozenset(rules))

    def _member(self, group: Group) -> Member:
        born = self._born
        return tuple([(fid, born.get(fid, -1)) for m in group for _, fid in m.bound])

    def _lives(self, member: Member) -> bool:
        return all(self._born.get(fid) == n for fid, n in member)

    def _store(self, key: GateKey, window: deque[tuple[float, Match]]) -> None:
        if window:
            self.windows[key] = window
        else:
            self.windows.pop(key, None)

    @staticmethod
    def _prune(window: deque[tuple[float, Match]], within: float, now: float) -> None:
        while window and window[0][0] <= now - within:
            window.popleft()
