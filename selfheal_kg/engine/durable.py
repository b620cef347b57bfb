"""The durable-rules adapter: the product's ``RuleEngine``.

durable-rules is untyped and unmaintained; everything it touches stays in this module.
Its traps, and how this adapter avoids them (see /work/shared/notes/libraries.md):

- ``Host`` starts two timer threads that never stop: ``_QuietHost._run`` does nothing and
  this engine drives time itself (``advance``), so nothing runs in the background;
- rulesets are registered from JSON (never ``durable.lang``, which keeps module globals),
  each load under a new name ``<name>__v<N>``; the old ruleset is deleted after the swap;
- every fact is posted with an explicit ``id`` (content hashes collide) in one session;
- ``MessageNotHandledException`` / ``MessageObservedException`` are expected and caught;
- exceptions inside actions are swallowed by durable: every action is wrapped, the error is
  kept and re-raised as ``RuleActionError`` once the post returns;
- ``Ruleset.__init__`` deletes the ``run`` key of the dict it gets: it gets a deep copy;
- durable JSON-encodes every posted fact: a stored fact is encoded once, as durable's
  ``Host`` would, and its retraction posts the same text (:meth:`DurableMatcher._post`).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

from durable import engine as durable_engine

from selfheal_kg.engine.compile_durable import DurableProgram, compile_ruleset, derived_attrs
from selfheal_kg.engine.gate import Match
from selfheal_kg.engine.ir import RuleSet
from selfheal_kg.engine.port import EngineCore, Matcher
from selfheal_kg.errors import RuleActionError, RuleLoadError
from selfheal_kg.model import Fact, FactValue

_SID = "0"
_RESERVED = ("$", "__")
_MAX_NAME_SETS = 1024
# What durable's Ruleset does (json.dumps(..., ensure_ascii=False)), without a new encoder per call
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


class _QuietHost(durable_engine.Host):  # type: ignore[misc]  # durable is untyped
    """A durable ``Host`` without its background timer threads."""

    def _run(self) -> None:
        """Start nothing: the engine is driven explicitly."""


def fact_payload(
    fact: Fact, program: DurableProgram, plain: dict[tuple[str, ...], bool] | None = None
) -> dict[str, FactValue]:
    """Return the message posted to durable for ``fact``: attrs, derived regex tests, sid.

    ``plain`` remembers which attribute name sets need no filtering (facts of one type
    share theirs), so that most facts are copied without testing each name.
    """
    attrs = fact.attrs
    names = tuple(attrs)
    known = None if plain is None else plain.get(names)
    if known is None:
        known = not any(_reserved(k) for k in names)
        if plain is not None and len(plain) < _MAX_NAME_SETS:
            plain[names] = known
    # keys durable reserves or that could spoof a derived attribute are dropped
    data = dict(attrs) if known else {k: v for k, v in attrs.items() if not _reserved(k)}
    data["id"], data["type"] = fact.id, fact.type
    if program.regexes:
        data.update(derived_attrs(program.regexes, data))
    data["sid"] = _SID
    return data


def _reserved(key: str) -> bool:
    return key == "sid" or key.startswith(_RESERVED)


class DurableMatcher:
    """One compiled rule set registered on a host under a versioned name."""

    def __init__(self, host: _QuietHost, program: DurableProgram, name: str) -> None:
        self._host = host
        self._program = program
        self.name = name
        self._matches: list[Match] = []
        self._errors: list[tuple[str, BaseException]] = []
        # fact id → the payload durable stored, encoded; a fact no rule tests is never stored,
        # so retracting it needs no post (and a stored one is not rebuilt nor re-encoded)
        self._held: dict[str, str] = {}
        self._plain: dict[tuple[str, ...], bool] = {}
        definition = {
            rule: {**copy.deepcopy(body), "run": self._action(rule)}
            for rule, body in program.definition.items()
        }
        self._empty = not definition
        self._ruleset: Any = None
        if not self._empty:
            host.register_rulesets({name: definition})
            self._ruleset = host.get_ruleset(name)

    def _action(self, durable_rule: str) -> Callable[[Any], None]:
        rule_id, aliases = self._program.rules[durable_rule]

        def run(closure: Any) -> None:
            try:
                self.record(rule_id, aliases, closure._m)
            except BaseException as exc:  # durable would swallow it: keep it for the caller
                self._errors.append((rule_id, exc))

        return run

    def record(self, rule_id: str, aliases: tuple[str, ...], message: Mapping[str, Any]) -> None:
        """Record one durable action call as a ``Match``."""
        bound = tuple((alias, str(message[alias]["id"])) for alias in aliases)
        self._matches.append(Match(rule_id, bound))

    def assert_fact(self, fact: Fact) -> list[Match]:
        """Post ``fact`` as a durable fact and return the matches its actions recorded."""
        if self._empty:
            return []
        payload = fact_payload(fact, self._program, self._plain)
        encoded = _ENCODE(payload)
        if self._post(durable_engine.durable_rules_engine.assert_fact, encoded, payload):
            self._held[fact.id] = encoded
        return self._outcome()

    def retract_fact(self, fact: Fact) -> list[Match]:
        """Retract ``fact`` and return the matches it unblocks."""
        encoded = self._held.pop(fact.id, None)
        if encoded is None or self._empty:
            return []
        self._post(durable_engine.durable_rules_engine.retract_fact, encoded, encoded)
        return self._outcome()

    def stored_facts(self) -> list[dict[str, Any]]:
        """Return the facts durable itself holds (for memory checks)."""
        if self._empty:
            return []
        facts: list[dict[str, Any]] = self._host.get_facts(self.name, _SID)
        return facts

    def _post(self, call: Callable[[Any, str], Any], encoded: str, message: object) -> bool:
        """Post an encoded fact as ``Host.assert_fact``/``retract_fact`` do, then run actions.

        Returns whether some rule tests the fact (else durable ignored it).
        """
        self._matches, self._errors = [], []
        ruleset = self._ruleset
        try:
            state = ruleset._handle_result(call(ruleset._handle, encoded), message)
        except durable_engine.MessageNotHandledException:
            return False  # expected: no rule tests this fact
        except durable_engine.MessageObservedException:
            return True  # expected: the fact is already known
        failures: list[BaseException] = []

        def done(error: BaseException | None, _state: object) -> None:
            if error:
                failures.append(error)

        ruleset.do_actions(state, done)
        if failures:  # durable's own failure, not an action's (those are in self._errors)
            raise failures[0]
        return True

    def _outcome(self) -> list[Match]:
        """Return the matches of the last post, or raise the first error of its actions."""
        if self._errors:
            rule_id, exc = self._errors[0]
            raise RuleActionError(rule_id, "match", exc) from exc
        return self._matches

    def close(self) -> None:
        """Delete the durable ruleset (never called while one of its actions runs)."""
        if self._empty:
            return
        ruleset = self._host._ruleset_directory.pop(self.name, None)
        if ruleset is not None:
            self._host._ruleset_list.remove(ruleset)
            durable_engine.durable_rules_engine.delete_ruleset(ruleset._handle)
        self._empty = True
        self._held.clear()


class DurableRuleEngine(EngineCore):
    """The product ``RuleEngine`` on durable-rules (count windows/throttle in ``EngineCore``)."""

    def __init__(
        self,
        *,
        name: str = "selfheal",
        ttl: float | None = None,
        ttl_by_type: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(ttl=ttl, ttl_by_type=ttl_by_type)
        self._name = name
        self._host = _QuietHost()
        self._versions = itertools.count(1)

    def _build(self, ruleset: RuleSet) -> Matcher:
        program = compile_ruleset(ruleset)
        name = f"{self._name}__v{next(self._versions)}"
        try:
            return DurableMatcher(self._host, program, name)
        except Exception as exc:
            where = ruleset.rules[0].source_file if ruleset.rules else ruleset.name
            raise RuleLoadError(where or ruleset.name, f"durable-rules refused: {exc}") from exc

    @property
    def active_name(self) -> str | None:
        """The durable ruleset name in force (``<name>__v<N>``)."""
        matcher = self._matcher
        return matcher.name if isinstance(matcher, DurableMatcher) else None

    def durable_facts(self) -> list[dict[str, Any]]:
        """Return the facts stored inside durable-rules (should mirror ``facts()``)."""
        with self._lock:
            matcher = self._matcher
            return matcher.stored_facts() if isinstance(matcher, DurableMatcher) else []

    def close(self) -> None:
        """Delete the active durable ruleset."""
        with self._lock:
            if self._matcher is not None:
                self._matcher.close()
                self._matcher = None
