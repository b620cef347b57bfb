"""The effectiveness report: how well detection and healing work, and what to improve.

Figures per pattern, playbook, service and period, computed from the incidents graph:

* ``mttd`` — mean time to detect (onset → incident opened), seconds;
* ``mttr`` — mean time to recover (onset → recovery verified), seconds;
* ``success_rate`` — share of playbook trials that worked and did not recur;
* ``false_positive_rate`` — share of incidents that were noise: status ``false-positive``, or
  closed without any action (not escalated to a human, not resolved by one);
* ``recurrence_rate`` — share of successful playbook trials followed by a new incident on the
  same node and pattern within the recurrence window;
* ``actions_per_incident`` — executed steps (repair and rollback) per incident.

Suggestions: playbooks whose success is falling (the last N trials against the earlier ones),
patterns no playbook handles, and noisy detectors (many false positives).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.patterns import active_patterns, handled_patterns
from selfheal_kg.learn.stats import (
    RECURRENCE_WINDOW,
    IncidentRow,
    incident_rows,
)

DAY = 86400.0
FALLING_DROP = 0.2  # a fall smaller than this is noise with a handful of trials
NOISY_MIN = 3
NOISY_SHARE = 0.5
_UNACTED_OK = frozenset({"escalated", "awaiting-approval"})


@dataclass(frozen=True, slots=True)
class Figures:
    """The effectiveness figures of one group of incidents (``None``: nothing to measure)."""

    incidents: int
    mttd: float | None
    mttr: float | None
    success_rate: float | None
    false_positive_rate: float | None
    recurrence_rate: float | None
    actions_per_incident: float | None


def is_false_positive(row: IncidentRow) -> bool:
    """Whether the incident was noise: confirmed so, or closed without any action."""
    if row.status == "false-positive":
        return True
    acted = row.actions > 0 or row.human_root_cause is not None or row.human_playbook is not None
    return row.closed is not None and not acted and row.status not in _UNACTED_OK


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return round(statistics.fmean(vals), 6) if vals else None


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 6) if total else None


def figures(rows: Sequence[IncidentRow]) -> Figures:
    """Return the figures of ``rows``."""
    tried = [r for r in rows if r.tried]
    resolved = [r for r in tried if r.success]
    return Figures(
        incidents=len(rows),
        mttd=_mean(r.timings["timeToDetect"] for r in rows if "timeToDetect" in r.timings),
        mttr=_mean(r.timings["timeToRecover"] for r in rows if "timeToRecover" in r.timings),
        success_rate=_share(sum(r.worked for r in tried), len(tried)),
        false_positive_rate=_share(sum(is_false_positive(r) for r in rows), len(rows)),
        recurrence_rate=_share(sum(r.recurred for r in resolved), len(resolved)),
        actions_per_incident=_share(sum(r.actions for r in rows), len(rows)),
    )


def _grouped(
    rows: Sequence[IncidentRow], name: str, key: Callable[[IncidentRow], str | None]
) -> list[dict[str, Any]]:
    groups: dict[str, list[IncidentRow]] = defaultdict(list)
    for r in rows:
        k = key(r)
        if k is not None:
            groups[k].append(r)
    return [{name: k, **asdict(figures(g))} for k, g in sorted(groups.items())]


def period_label(t: float, period: float) -> str:
    """Return the UTC start of the period holding ``t`` (ISO 8601)."""
    start = (t // period) * period
    return datetime.fromtimestamp(start, tz=UTC).isoformat().replace("+00:00", "Z")


def effectiveness(
    store: KnowledgeStore,
    *,
    period: float = DAY,
    last_n: int = 5,
    recurrence_window: float = RECURRENCE_WINDOW,
) -> dict[str, Any]:
    """Return the effectiveness report (JSON-ready).

    Args:
        store: the knowledge store.
        period: length of the reporting periods in seconds (default one day).
        last_n: how many recent trials of a playbook are compared with the earlier ones.
        recurrence_window: seconds within which a new incident makes a resolution recur.
    """
    rows = incident_rows(store, recurrence_window)
    return {
        "overall": asdict(figures(rows)),
        "by_pattern": _grouped(rows, "pattern", lambda r: r.pattern),
        "by_playbook": _grouped(rows, "playbook", lambda r: r.playbook),
        "by_service": _grouped(rows, "service", lambda r: r.node),
        "by_period": _grouped(rows, "period", lambda r: period_label(r.opened, period)),
        "suggestions": suggestions(store, rows, last_n=last_n),
    }


def suggestions(
    store: KnowledgeStore, rows: Sequence[IncidentRow], *, last_n: int = 5
) -> list[dict[str, Any]]:
    """Return the improvement suggestions, most actionable kinds first."""
    return falling_playbooks(rows, last_n) + unhandled_patterns(store, rows) + noisy_detectors(rows)


def falling_playbooks(rows: Sequence[IncidentRow], last_n: int = 5) -> list[dict[str, Any]]:
    """Return playbooks whose success in the last ``last_n`` trials fell below the earlier rate."""
    trials: dict[str, list[IncidentRow]] = defaultdict(list)
    for r in sorted(rows, key=lambda x: (x.opened, x.id)):
        if r.tried:
            trials[str(r.playbook)].append(r)
    out: list[dict[str, Any]] = []
    for pb, ts in sorted(trials.items()):
        recent, earlier = ts[-last_n:], ts[:-last_n]
        if len(earlier) < 2 or len(recent) < 2:
            continue
        now = sum(r.worked for r in recent) / len(recent)
        before = sum(r.worked for r in earlier) / len(earlier)
        if now < before - FALLING_DROP:
            out.append({
                "kind": "falling-success",
                "subject": pb,
                "recent": round(now, 6),
                "earlier": round(before, 6),
                "message": f"playbook {pb}: success fell from {before:.0%} to {now:.0%} over "
                f"the last {len(recent)} trials; review it or what changed in the targets",
            })
    return out


def unhandled_patterns(store: KnowledgeStore, rows: Sequence[IncidentRow]) -> list[dict[str, Any]]:
    """Return active or diagnosed patterns that no playbook handles."""
    known = active_patterns(store)
    handled = handled_patterns(store)
    seen: dict[str, int] = defaultdict(int)
    for r in rows:
        seen[r.pattern] += 1
    out: list[dict[str, Any]] = []
    for pattern in sorted(set(known) | set(seen)):
        if pattern in handled:
            continue
        out.append({
            "kind": "pattern-without-playbook",
            "subject": pattern,
            "incidents": seen.get(pattern, 0),
            "message": f"pattern {pattern} ({seen.get(pattern, 0)} incidents) has no playbook: "
            "every incident escalates to a human",
        })
    return out


def noisy_detectors(rows: Sequence[IncidentRow]) -> list[dict[str, Any]]:
    """Return detectors with many false positives (at least 3, and half their incidents)."""
    total: dict[str, int] = defaultdict(int)
    noise: dict[str, int] = defaultdict(int)
    for r in rows:
        for d in r.detectors:
            total[d] += 1
            noise[d] += is_false_positive(r)
    out: list[dict[str, Any]] = []
    for d in sorted(total):
        if noise[d] >= NOISY_MIN and noise[d] / total[d] >= NOISY_SHARE:
            out.append({
                "kind": "noisy-detector",
                "subject": d,
                "false_positives": noise[d],
                "incidents": total[d],
                "message": f"detector {d}: {noise[d]} of {total[d]} incidents were false "
                "positives; raise its fire levels or review its series",
            })
    return out
