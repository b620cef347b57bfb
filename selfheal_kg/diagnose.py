"""On-demand diagnosis (``POST /diagnose``): what is wrong now, or in a time window, and why.

It reads the pipeline's signals (active, or those whose onset falls in the window), ranks root
causes on the topology with pattern hints, matches incident patterns, lists the candidate
playbooks for the top cause — and records all of it in the incidents graph as an incident with
status ``diagnosed`` (no repair is started: ``POST /heal`` does that), so the answer and its
provenance are queryable with SPARQL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from selfheal_kg.clock import Clock
from selfheal_kg.decide.choose import choose
from selfheal_kg.incident import Recorder
from selfheal_kg.kg import history
from selfheal_kg.model import Diagnosis, Signal
from selfheal_kg.pipeline import Pipeline
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.patterns import hints, match
from selfheal_kg.rca.rank import rank


@dataclass(frozen=True, slots=True)
class Window:
    """Signals whose onset lies in [start, end]; ``None`` ends are open."""

    start: float | None = None
    end: float | None = None

    def holds(self, t: float) -> bool:
        """Whether ``t`` falls in the window."""
        return (self.start is None or t >= self.start) and (self.end is None or t <= self.end)


def diagnose(
    pipeline: Pipeline,
    recorder: Recorder,
    clock: Clock,
    *,
    target: str | None = None,
    window: Window | None = None,
    top: int = 5,
) -> dict[str, Any]:
    """Diagnose now (or in ``window``), record it, and return it as JSON-ready data."""
    now = clock.now()
    if window is None:
        signals: list[Signal] = list(pipeline.active.values())
    else:
        signals = [s for s in pipeline.recent if window.holds(s.onset)]
    down = pipeline.liveness.down()
    edges, kinds = pipeline.knowledge.topology()
    snapshot = TopologySnapshot.from_edges(edges, kinds)
    matches = match(pipeline.knowledge.patterns(), signals, down)
    anomalies = pipeline._anomalies(signals)
    causes = rank(
        snapshot,
        anomalies,
        target=target,
        top=top,
        observed=set(pipeline.series.last_seen()),
        pattern_hints=hints(matches),
    )
    out: dict[str, Any] = {
        "at": now,
        "target": target,
        "signals": [asdict(s) for s in signals],
        "down": sorted(down),
        "patterns": [asdict(m) for m in matches],
        "root_causes": [
            {**asdict(c), "path": list(c.path), "evidence": list(c.evidence)} for c in causes
        ],
        "incidents": [
            {"id": i.id, "status": i.status.value, "root": i.root}
            for i in pipeline.book.open_incidents()
        ],
        "candidates": [],
        "id": None,
    }
    if not causes:
        return out
    root = causes[0].node
    pattern = next((m.pattern for m in matches if m.node == root), None)
    diag_id = f"diag-{int(now * 1000)}"
    out["id"] = diag_id
    recorder.add(history.incident_opened(diag_id, root, pattern or "Unknown", now))
    recorder.status(diag_id, "diagnosed")
    for s in signals:
        recorder.add(history.signal_record(diag_id, s))
    if pattern is not None:
        onset = min((s.onset for s in signals), default=now)
        d = Diagnosis(diag_id, pattern, root, "diagnose-api", (), now, onset)
        recorder.add(history.diagnosis(diag_id, d))
        decision = choose(
            diag_id,
            pattern,
            root,
            kinds.get(root, "Service"),
            list(pipeline.knowledge.playbooks().values()),
            snapshot.graph,
            pipeline.knowledge.history(),
        )
        recorder.add(history.decision(decision, now))
        out["candidates"] = [asdict(c) for c in decision.candidates]
        out["decision"] = decision.why
    recorder.add(history.root_causes(diag_id, causes))
    return out
