"""Match live signals against the incident patterns of the knowledge graph.

A pattern's symptoms are (metric, direction) pairs; a node matches a pattern in the share of
its symptoms that it shows. ``telemetry.absent`` is shown by a node that is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from selfheal_kg.kg.namespaces import SPARQL_PREFIXES
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.model import Signal

ABSENT = "telemetry.absent"

# {pattern id: (root-cause type, ((metric, direction), ...))}, as ``load_symptoms`` returns
Patterns = Mapping[str, tuple[str, tuple[tuple[str, str], ...]]]


@dataclass(frozen=True, slots=True)
class PatternMatch:
    """How well a node's signals match one pattern."""

    pattern: str
    node: str
    score: float
    matched: tuple[str, ...]
    root_cause_type: str


def load_symptoms(store: KnowledgeStore) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """Return ``{pattern id: (root-cause type, ((metric, direction), ...))}`` of active patterns."""
    rows = store.query(
        SPARQL_PREFIXES
        + """SELECT ?id ?type ?metric ?direction WHERE {
  ?p a shk:IncidentPattern ; shk:patternId ?id ; shk:status "active" ; shk:hasSymptom ?s .
  ?s shk:metric ?metric ; shk:direction ?direction .
  OPTIONAL { ?p shk:rootCauseType ?type } } ORDER BY ?id ?metric"""
    ).dicts()  # type: ignore[union-attr]
    out: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    for r in rows:
        entry = out.setdefault(str(r["id"]), (str(r.get("type") or ""), []))
        entry[1].append((str(r["metric"]), str(r["direction"])))
    return {k: (t, tuple(s)) for k, (t, s) in out.items()}


def match(
    patterns: Patterns,
    signals: Iterable[Signal],
    down: Iterable[str] = (),
) -> list[PatternMatch]:
    """Return every (pattern, node) with at least one symptom shown, best first."""
    shown: dict[str, set[tuple[str, str]]] = {}
    for s in signals:
        shown.setdefault(s.node, set()).add((s.metric, s.direction))
    for node in down:
        shown.setdefault(node, set()).add((ABSENT, "up"))
    out = []
    for pid, (rc_type, symptoms) in patterns.items():
        for node, seen in shown.items():
            hit = tuple(f"{m} {d}" for m, d in symptoms if (m, d) in seen)
            if hit:
                out.append(PatternMatch(pid, node, len(hit) / len(symptoms), hit, rc_type))
    out.sort(key=lambda m: (-m.score, m.pattern, m.node))
    return out


def hints(matches: Iterable[PatternMatch]) -> dict[str, float]:
    """Return ``{node: strength}`` for RCA's pattern hints.

    Strength is the share of the pattern's symptoms shown, discounted by how many symptoms
    corroborate it (``1 - 0.5 ** n``): a node showing both symptoms of a two-symptom pattern
    (0.75) is stronger evidence than one showing the single symptom of another (0.5).
    """
    out: dict[str, float] = {}
    for m in matches:
        strength = m.score * (1.0 - 0.5 ** len(m.matched))
        out[m.node] = max(out.get(m.node, 0.0), strength)
    return out


def diagnosis_hints(diagnosed: Iterable[tuple[str, str]], patterns: Patterns) -> dict[str, float]:
    """Return ``{node: strength}`` for the (node, pattern id) pairs a rule concluded.

    A conclusion is stronger than a bare match, and stronger the more symptoms corroborate
    it: ``1 - 0.5 ** (n + 1)`` for a pattern of n symptoms (0.75 for HighLatency, 0.875 for
    Overload or SlowQuery; a pattern the knowledge graph does not describe counts as one).
    """
    out: dict[str, float] = {}
    for node, pattern in diagnosed:
        n = max(1, len(patterns.get(pattern, ("", ()))[1]))
        out[node] = max(out.get(node, 0.0), 1.0 - 0.5 ** (n + 1))
    return out
