"""Per-series detector fire levels, raised by confirmed false positives and reversible.

A human who confirms that an incident was noise (``POST /incidents/{id}/false-positive``)
says that the detector fired too easily on the series of that incident's signals. Each such
confirmation raises the fire level of each of those series by ``step``, never above
``ceiling`` (0.98: a level of 1 would mute the series). Every change is a
``shk:ThresholdAdjustment`` in the learned graph (series, old, new, reason, at, incident),
so it is explained, and ``revert`` undoes one. The learned graph, not the knowledge graph,
holds them because the loader replaces the knowledge graph on every reload of the files.

The level of a series is ``base`` plus the steps of its adjustments that are not reverted,
so reverting any one of them (not only the last) gives a consistent level.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, replace

from rdflib import RDF, Literal

from selfheal_kg.clock import Clock
from selfheal_kg.errors import NotFound
from selfheal_kg.kg import records
from selfheal_kg.kg.history import Triple, dec, incident_iri, ts
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH, LEARNED_GRAPH, SHK, node_iri
from selfheal_kg.kg.records import epoch, local_name
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.patterns import require_incident
from selfheal_kg.learn.stats import select

BASE_LEVEL = 0.8  # SignalTracker's default fire level
STEP = 0.05
CEILING = 0.98
FALSE_POSITIVE = "false-positive"


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One recorded change of a series' fire level."""

    id: str
    series: str
    old: float
    new: float
    reason: str
    at: float
    incident: str
    reverted: bool = False

    def as_dict(self) -> dict[str, object]:
        """Return the adjustment as plain JSON values."""
        return {
            "id": self.id,
            "series": self.series,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
            "at": self.at,
            "incident": self.incident,
            "reverted": self.reverted,
        }


_Q_ADJUSTMENTS = """
SELECT ?id ?series ?old ?new ?reason ?at ?inc ?reverted WHERE {
  ?a a shk:ThresholdAdjustment ; shk:adjustmentId ?id ; shk:series ?series ;
     shk:oldLevel ?old ; shk:newLevel ?new ; shk:reason ?reason ; shk:at ?at ;
     shk:incident ?inc .
  OPTIONAL { ?a shk:reverted ?reverted }
} ORDER BY ?at ?id"""


class ThresholdTuner:
    """Adapt per-series fire levels from confirmed false positives; state lives in the store."""

    def __init__(
        self,
        store: KnowledgeStore,
        clock: Clock,
        *,
        base: float = BASE_LEVEL,
        step: float = STEP,
        ceiling: float = CEILING,
    ) -> None:
        if not 0 < base <= ceiling <= 1 or step <= 0:
            raise ValueError("need 0 < base <= ceiling <= 1 and step > 0")
        self.store, self.clock = store, clock
        self.base, self.step, self.ceiling = base, step, ceiling

    def adjustments(self) -> list[Adjustment]:
        """Return every recorded adjustment, oldest first."""
        return [
            Adjustment(
                id=str(r["id"]),
                series=str(r["series"]),
                old=float(r["old"]),  # type: ignore[arg-type]
                new=float(r["new"]),  # type: ignore[arg-type]
                reason=str(r["reason"]),
                at=epoch(r["at"]),
                incident=local_name(str(r["inc"])),
                reverted=bool(r.get("reverted")),
            )
            for r in select(self.store, _Q_ADJUSTMENTS)
        ]

    def levels(self) -> dict[str, float]:
        """Return the fire level of every adjusted series (others use the tracker's default)."""
        raised: dict[str, float] = defaultdict(float)
        for a in self.adjustments():
            raised[a.series] += 0.0 if a.reverted else a.new - a.old
        return {s: round(min(self.ceiling, self.base + r), 6) for s, r in raised.items()}

    def adjust(self, series: str, incident_id: str, reason: str) -> Adjustment | None:
        """Raise ``series``' fire level by one step; ``None`` when already at the ceiling."""
        old = self.levels().get(series, self.base)
        new = round(min(self.ceiling, old + self.step), 6)
        if new <= old:
            return None
        now = self.clock.now()
        # the old level is in the key: two raises of one series for one incident at the same
        # instant must not share an id (their triples would merge into one node)
        key = hashlib.sha256(f"{series}\n{incident_id}\n{old}".encode()).hexdigest()[:8]
        adj = Adjustment(f"{int(now * 1000)}-{key}", series, old, new, reason, now, incident_id)
        self.store.add(LEARNED_GRAPH, _triples(adj))
        return adj

    def confirm_false_positive(
        self, incident_id: str, by: str, note: str = ""
    ) -> list[Adjustment]:
        """Mark an incident as a false positive and raise the levels of its signals' series.

        Confirming the same incident twice raises nothing the second time.

        Raises:
            NotFound: no incident ``incident_id``.
        """
        inc = require_incident(self.store, incident_id)
        records.set_status(self.store, inc, FALSE_POSITIVE)
        self.store.add(
            INCIDENTS_GRAPH,
            [(inc, SHK.falsePositiveBy, Literal(by)), (inc, SHK.falsePositiveNote, Literal(note))],
        )
        done = {a.series for a in self.adjustments() if a.incident == incident_id}
        reason = f"false positive confirmed by {by}" + (f": {note}" if note else "")
        out = []
        for series in _series_of(self.store, incident_id):
            if series not in done and (adj := self.adjust(series, incident_id, reason)):
                out.append(adj)
        return out

    def revert(self, adjustment_id: str) -> Adjustment:
        """Undo one adjustment (it stays in the record, marked reverted).

        Raises:
            NotFound: no adjustment ``adjustment_id``, or it is already reverted.
        """
        adj = next((a for a in self.adjustments() if a.id == adjustment_id), None)
        if adj is None or adj.reverted:
            raise NotFound(f"no active threshold adjustment {adjustment_id!r}")
        a = node_iri("threshold-adjustment", adjustment_id)
        self.store.add(
            LEARNED_GRAPH,
            [(a, SHK.reverted, Literal(True)), (a, SHK.revertedAt, ts(self.clock.now()))],
        )
        return replace(adj, reverted=True)


def _series_of(store: KnowledgeStore, incident_id: str) -> list[str]:
    q = f"""SELECT DISTINCT ?series WHERE {{
  <{incident_iri(incident_id)}> shk:hasSignal/shk:series ?series }} ORDER BY ?series"""
    return [str(r["series"]) for r in select(store, q)]


def _triples(adj: Adjustment) -> list[Triple]:
    a = node_iri("threshold-adjustment", adj.id)
    return [
        (a, RDF.type, SHK.ThresholdAdjustment),
        (a, SHK.adjustmentId, Literal(adj.id)),
        (a, SHK.series, Literal(adj.series)),
        (a, SHK.oldLevel, dec(adj.old)),
        (a, SHK.newLevel, dec(adj.new)),
        (a, SHK.reason, Literal(adj.reason)),
        (a, SHK.at, ts(adj.at)),
        (a, SHK.incident, incident_iri(adj.incident)),
    ]
