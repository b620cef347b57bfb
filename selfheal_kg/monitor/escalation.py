"""Escalation policies: which action is due once an alert group has fired for how long.

A policy is a list of levels (name, seconds after the group first fired, action), e.g. notify
at 0 s, auto-heal at 0 s, page at 300 s, like PagerDuty escalation rules. ``AlertManager``
reports each level once per firing episode; the policy can be declared in the knowledge graph
(``shk:EscalationPolicy``, see ontology/selfheal.ttl).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from selfheal_kg.errors import ConfigError
from selfheal_kg.kg.namespaces import SPARQL_PREFIXES
from selfheal_kg.kg.store import KnowledgeStore, SelectResult


@dataclass(frozen=True, slots=True)
class EscalationLevel:
    """Run ``action`` once a group has fired unmuted for ``after_seconds``."""

    name: str
    after_seconds: float
    action: str


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """Ordered escalation levels, e.g. notify at 0 s, auto-heal at 0 s, page at 300 s."""

    levels: tuple[EscalationLevel, ...]

    @classmethod
    def of(cls, levels: Iterable[tuple[str, float, str]]) -> EscalationPolicy:
        """Build a policy from ``(name, after_seconds, action)`` triples; refuse bad levels."""
        built = []
        for name, after, action in levels:
            if not name or not action:
                raise ConfigError(f"escalation level {name!r} needs a name and an action")
            if not after >= 0:  # also refuses NaN
                raise ConfigError(f"escalation level {name!r}: afterSeconds {after} is not >= 0")
            built.append(EscalationLevel(name, float(after), action))
        if len({lv.name for lv in built}) != len(built):
            raise ConfigError("escalation level names must be unique")
        return cls(tuple(sorted(built, key=lambda lv: (lv.after_seconds, lv.name))))

    def due(self, elapsed: float, done: set[str]) -> list[EscalationLevel]:
        """Return the levels reached after ``elapsed`` seconds that are not in ``done``."""
        return [lv for lv in self.levels if lv.after_seconds <= elapsed and lv.name not in done]


DEFAULT_POLICY = EscalationPolicy.of(
    [("notify", 0, "notify"), ("auto-heal", 0, "heal"), ("page", 300, "page")]
)


@dataclass(frozen=True, slots=True)
class Escalation:
    """A level transition of one group: ``action`` is due since the group fired at ``since``."""

    group_id: str
    root: str
    level: str
    action: str
    since: float
    at: float
    alerts: tuple[str, ...]


_POLICY_QUERY = """SELECT ?policy ?name ?after ?action WHERE {
    ?policy a shk:EscalationPolicy ; shk:hasLevel ?level .
    ?level a shk:EscalationLevel ; shk:levelName ?name ; shk:afterSeconds ?after ;
        shk:levelAction ?action .
} ORDER BY ?policy ?after ?name"""


def policy_from_graph(store: KnowledgeStore) -> EscalationPolicy:
    """Read the escalation policy from the knowledge graph, or return ``DEFAULT_POLICY``.

    Levels hang off an ``shk:EscalationPolicy`` by ``shk:hasLevel``; with several policies the
    first by IRI wins. Raise ``ConfigError`` naming a level whose values are unusable.
    """
    result = store.query(SPARQL_PREFIXES + _POLICY_QUERY)
    assert isinstance(result, SelectResult)
    rows = result.dicts()
    if not rows:
        return DEFAULT_POLICY
    first = rows[0]["policy"]
    levels = []
    for row in (r for r in rows if r["policy"] == first):
        after = row["after"]
        if isinstance(after, bool) or not isinstance(after, int | float | Decimal):
            raise ConfigError(
                f"escalation level {row['name']!r}: afterSeconds {after!r} is no number"
            )
        levels.append((str(row["name"]), float(after), str(row["action"])))
    return EscalationPolicy.of(levels)
