"""Success statistics learnt from recorded outcomes (the incidents graph is the record).

Every closed incident that tried a playbook is one trial of (playbook, pattern): a success
when its outcome succeeded and the problem did not come back, a failure otherwise. "Came back"
(recurrence) means another incident on the same node and pattern opened within ``window``
seconds (default one hour) after the resolution. The posterior per arm is
Beta(prior + successes, prior + failures), with the prior of ``decide.choose`` (from the
playbook's declared risk), so the decision and the statistics agree.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rdflib import Literal

from selfheal_kg.decide.choose import PRIORS, History
from selfheal_kg.kg.history import Triple, incident_iri
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH, SHK, SPARQL_PREFIXES, node_iri
from selfheal_kg.kg.records import epoch, local_name
from selfheal_kg.kg.store import KnowledgeStore, PyValue

RECURRENCE_WINDOW = 3600.0
DEFAULT_CLASS = "default"
TIMINGS = ("timeToDetect", "timeToDiagnose", "timeToRepair", "timeToRecover")

_Q_INCIDENTS = """
SELECT ?id ?n ?p ?status ?opened ?closed ?pb ?success ?recurred ?crit
       ?timeToDetect ?timeToDiagnose ?timeToRepair ?timeToRecover WHERE {
  ?inc a shk:Incident ; shk:incidentId ?id ; shk:openedAt ?opened ; shk:affects ?n ;
       shk:matchesPattern ?p .
  OPTIONAL { ?inc shk:status ?status }
  OPTIONAL { ?inc shk:closedAt ?closed }
  OPTIONAL { ?inc shk:hasDecision/shk:chosePlaybook ?pb }
  OPTIONAL { ?n shk:criticality ?crit }
  OPTIONAL { ?inc shk:hasOutcome ?o . ?o shk:succeeded ?success .
    OPTIONAL { ?o shk:recurred ?recurred }
    OPTIONAL { ?o shk:timeToDetect ?timeToDetect }
    OPTIONAL { ?o shk:timeToDiagnose ?timeToDiagnose }
    OPTIONAL { ?o shk:timeToRepair ?timeToRepair }
    OPTIONAL { ?o shk:timeToRecover ?timeToRecover } }
}"""

_Q_EXECUTIONS = """
SELECT ?id (COUNT(DISTINCT ?e) AS ?n) WHERE {
  ?inc a shk:Incident ; shk:incidentId ?id ; shk:hasExecution ?e .
} GROUP BY ?id"""

_Q_SIGNALS = """
SELECT DISTINCT ?id ?metric ?direction ?detector ?series WHERE {
  ?inc a shk:Incident ; shk:incidentId ?id ; shk:hasSignal ?s .
  ?s shk:metric ?metric ; shk:direction ?direction ; shk:detector ?detector ; shk:series ?series .
}"""

_Q_RESOLUTIONS = """
SELECT ?id ?rct ?pb WHERE {
  ?inc a shk:Incident ; shk:incidentId ?id ; shk:hasResolution ?r .
  OPTIONAL { ?r shk:rootCauseType ?rct } OPTIONAL { ?r shk:playbook ?pb }
}"""

_Q_RISK = """
SELECT ?id ?risk WHERE { ?pb a shk:Playbook ; shk:playbookId ?id ; shk:riskLevel ?risk }"""


@dataclass(frozen=True, slots=True)
class Symptom:
    """One metric moving in one direction (what a signal record says about its series)."""

    metric: str
    direction: str


@dataclass(slots=True)
class IncidentRow:
    """One incident as the learning layer sees it (read back from the graph)."""

    id: str
    node: str
    pattern: str
    status: str
    opened: float
    closed: float | None = None
    playbook: str | None = None
    success: bool | None = None
    recurred: bool = False
    service_class: str = DEFAULT_CLASS
    timings: dict[str, float] = field(default_factory=dict)
    actions: int = 0
    symptoms: frozenset[Symptom] = frozenset()
    detectors: frozenset[str] = frozenset()
    series: frozenset[str] = frozenset()
    human_root_cause: str | None = None
    human_playbook: str | None = None

    @property
    def tried(self) -> bool:
        """Whether a playbook was tried and the outcome is known (one trial of an arm)."""
        return self.playbook is not None and self.success is not None

    @property
    def worked(self) -> bool:
        """Whether the playbook fixed the problem for good (success and no recurrence)."""
        return bool(self.success) and not self.recurred


@dataclass(frozen=True, slots=True)
class Stats:
    """Learnt numbers of one (playbook, pattern, service class) arm."""

    playbook: str
    pattern: str
    service_class: str
    successes: int
    failures: int
    recurrences: int
    alpha: float
    beta: float
    mean_repair: float | None
    median_repair: float | None

    @property
    def mean(self) -> float:
        """Posterior mean probability of success."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def trials(self) -> int:
        """Number of recorded trials."""
        return self.successes + self.failures

    @property
    def recurrence_rate(self) -> float:
        """Share of trials whose problem came back within the window."""
        return self.recurrences / self.trials if self.trials else 0.0


def select(store: KnowledgeStore, body: str) -> list[dict[str, PyValue]]:
    """Run a SELECT with the project's prefixes; return rows as dicts."""
    result = store.query(SPARQL_PREFIXES + body)
    return result.dicts()  # type: ignore[union-attr]


def incident_rows(store: KnowledgeStore, window: float = RECURRENCE_WINDOW) -> list[IncidentRow]:
    """Read every incident with its outcome, actions, symptoms and recurrence, oldest first."""
    rows: dict[str, IncidentRow] = {}
    for r in select(store, _Q_INCIDENTS):
        rows.setdefault(str(r["id"]), _row(r))
    for r in select(store, _Q_EXECUTIONS):
        if (found := rows.get(str(r["id"]))) is not None:
            found.actions = int(r["n"] or 0)
    _attach_signals(rows, select(store, _Q_SIGNALS))
    for r in select(store, _Q_RESOLUTIONS):
        if (found := rows.get(str(r["id"]))) is not None:
            found.human_root_cause = _opt_str(r.get("rct"))
            found.human_playbook = local_name(str(r["pb"])) if r.get("pb") else None
    ordered = sorted(rows.values(), key=lambda x: (x.opened, x.id))
    for earlier, _later in recurrences(ordered, window):
        earlier.recurred = True
    return ordered


def _row(r: Mapping[str, PyValue]) -> IncidentRow:
    return IncidentRow(
        id=str(r["id"]),
        node=local_name(str(r["n"])),
        pattern=local_name(str(r["p"])),
        status=str(r.get("status") or "open"),
        opened=epoch(r["opened"]),
        closed=epoch(r["closed"]) if r.get("closed") is not None else None,
        playbook=local_name(str(r["pb"])) if r.get("pb") else None,
        success=bool(r["success"]) if r.get("success") is not None else None,
        recurred=bool(r.get("recurred")),
        service_class=str(r.get("crit") or DEFAULT_CLASS),
        timings={k: float(v) for k in TIMINGS if (v := r.get(k)) is not None},
    )


def _attach_signals(rows: Mapping[str, IncidentRow], found: list[dict[str, PyValue]]) -> None:
    acc: dict[str, tuple[set[Symptom], set[str], set[str]]] = defaultdict(
        lambda: (set(), set(), set())
    )
    for r in found:
        symptoms, detectors, series = acc[str(r["id"])]
        symptoms.add(Symptom(str(r["metric"]), str(r["direction"])))
        detectors.add(str(r["detector"]))
        series.add(str(r["series"]))
    for iid, (symptoms, detectors, series) in acc.items():
        if (row := rows.get(iid)) is not None:
            row.symptoms = frozenset(symptoms)
            row.detectors = frozenset(detectors)
            row.series = frozenset(series)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def is_resolution(row: IncidentRow) -> bool:
    """Whether ``row`` ended resolved (by a playbook or a human), so its fix can recur."""
    return row.status == "resolved" and (row.success is not False)


def recurrences(
    rows: Iterable[IncidentRow], window: float = RECURRENCE_WINDOW
) -> list[tuple[IncidentRow, IncidentRow]]:
    """Return (earlier resolution, later incident) pairs on one node and pattern within ``window``.

    The later incident must open after the earlier one closed and at most ``window`` seconds
    later; each earlier incident is paired with its first recurrence only.
    """
    groups: dict[tuple[str, str], list[IncidentRow]] = defaultdict(list)
    for row in rows:
        groups[(row.node, row.pattern)].append(row)
    pairs: list[tuple[IncidentRow, IncidentRow]] = []
    for group in groups.values():
        group.sort(key=lambda x: (x.opened, x.id))
        for i, earlier in enumerate(group):
            if not is_resolution(earlier):
                continue
            end = earlier.closed if earlier.closed is not None else earlier.opened
            later = next((g for g in group[i + 1 :] if end < g.opened <= end + window), None)
            if later is not None:
                pairs.append((earlier, later))
    return pairs


def mark_recurrences(store: KnowledgeStore, window: float = RECURRENCE_WINDOW) -> list[str]:
    """Write ``shk:recurred true`` on resolutions that came back; return the newly marked ids."""
    flagged = {
        str(r["id"])
        for r in select(
            store, "SELECT ?id WHERE { ?i shk:incidentId ?id ; shk:hasOutcome/shk:recurred true }"
        )
    }
    triples: list[Triple] = []
    marked: list[str] = []
    for earlier, later in recurrences(incident_rows(store, window=0.0), window):
        if earlier.id in flagged:
            continue
        out = node_iri("outcome", earlier.id)
        triples += [
            (out, SHK.recurred, Literal(True)),
            (out, SHK.recurredBy, incident_iri(later.id)),
        ]
        marked.append(earlier.id)
    if triples:
        store.add(INCIDENTS_GRAPH, triples)
    return marked


def playbook_risks(store: KnowledgeStore) -> dict[str, str]:
    """Return each known playbook's declared risk level."""
    return {str(r["id"]): str(r["risk"]) for r in select(store, _Q_RISK)}


def _in(row: IncidentRow, window: tuple[float, float] | None) -> bool:
    return window is None or window[0] <= row.opened < window[1]


def success_stats(
    store: KnowledgeStore,
    window: tuple[float, float] | None = None,
    *,
    recurrence_window: float = RECURRENCE_WINDOW,
) -> dict[tuple[str, str, str], Stats]:
    """Return the learnt statistics per (playbook, pattern, service class).

    Args:
        store: the knowledge store (incidents, knowledge and topology graphs).
        window: only incidents opened in ``[start, end)`` (epoch seconds); ``None``: all.
        recurrence_window: seconds after a resolution within which a new incident on the same
            node and pattern makes it a failure.
    """
    risks = playbook_risks(store)
    arms: dict[tuple[str, str, str], list[IncidentRow]] = defaultdict(list)
    for row in incident_rows(store, recurrence_window):
        if row.tried and _in(row, window):
            arms[(str(row.playbook), row.pattern, row.service_class)].append(row)
    return {key: _stats(key, trials, risks.get(key[0], "high")) for key, trials in arms.items()}


def _stats(key: tuple[str, str, str], trials: list[IncidentRow], risk: str) -> Stats:
    a, b = PRIORS.get(risk, PRIORS["high"])
    ok = sum(1 for t in trials if t.worked)
    repairs = [t.timings.get("timeToRepair", t.timings.get("timeToRecover")) for t in trials]
    times = [x for x in repairs if x is not None]
    return Stats(
        playbook=key[0],
        pattern=key[1],
        service_class=key[2],
        successes=ok,
        failures=len(trials) - ok,
        recurrences=sum(1 for t in trials if t.recurred),
        alpha=a + ok,
        beta=b + len(trials) - ok,
        mean_repair=statistics.fmean(times) if times else None,
        median_repair=statistics.median(times) if times else None,
    )


def history_for_decision(
    store: KnowledgeStore, *, recurrence_window: float = RECURRENCE_WINDOW
) -> dict[tuple[str, str], History]:
    """Return successes and failures per (playbook, pattern) for ``decide.choose.choose``.

    Recurrence counts as failure; service classes are summed.
    """
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (pb, pattern, _cls), s in success_stats(
        store, recurrence_window=recurrence_window
    ).items():
        acc[(pb, pattern)][0] += s.successes
        acc[(pb, pattern)][1] += s.failures
    return {k: History(ok, failed) for k, (ok, failed) in acc.items()}
