"""A durable journal of repair steps, written before each step runs, and its reconciliation.

A repair interrupted by ``kill -9`` must neither be lost nor repeated. Before a step executes,
its intent is committed to an SQLite journal (WAL, ``synchronous=FULL``: the row is on disk
before the executor is called) together with the rollback point the executor captured.
After a restart each ``intent`` row is reconciled against the live state:

* the executor's fresh ``snapshot()`` differs from the recorded rollback point, or the target
  was recorded as not running and reports again since the intent → **applied**: marked done,
  never executed again;
* neither, and the step's timeout has not yet passed since the intent → **unknown**: the
  effect may still be coming (a process starting up); asked again on the next tick;
* neither, and the timeout has passed → **not applied**: the step is resumed (its state still
  equals its rollback point, so there is nothing to roll back and running it is no repeat).

The incident record itself lives in the incidents graph; ``restore_incidents`` rebuilds the
working copies of the incidents that were open when the process died.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from selfheal_kg.act.executor import ActionReport, Executor, Params
from selfheal_kg.act.heal import StepLike
from selfheal_kg.act.verify import LiveView
from selfheal_kg.clock import Clock
from selfheal_kg.errors import ActionError, ConfigError
from selfheal_kg.incident import Incident, IncidentBook, Status
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH, SPARQL_PREFIXES
from selfheal_kg.kg.records import epoch, local_name
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.model import Candidate, Decision, FactValue

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident TEXT NOT NULL,
    target TEXT NOT NULL,
    playbook TEXT NOT NULL,
    step INTEGER NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    rollback_point TEXT,
    timeout REAL NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS steps_open ON steps (closed, incident, step);
"""

_COLUMNS = ("id, incident, target, playbook, step, action, params, rollback_point, timeout, "
            "state, detail, created, updated, closed")


class State(StrEnum):
    """Where a journaled step stands."""

    INTENT = "intent"
    DONE = "done"
    FAILED = "failed"
    # an intent that did not take effect before a crash; the step runs again under a new entry
    SUPERSEDED = "superseded"


class Verdict(StrEnum):
    """What reconciliation concluded about an ``intent`` step."""

    APPLIED = "applied"
    NOT_APPLIED = "not-applied"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Entry:
    """One journaled step of one incident's repair."""

    id: int
    incident: str
    target: str
    playbook: str
    step: int
    action: str
    params: Mapping[str, FactValue]
    rollback_point: Mapping[str, FactValue] | None
    timeout: float
    state: State
    detail: str
    created: float
    updated: float
    closed: bool


class Journal:
    """The SQLite repair journal; thread-safe, every write committed before it returns.

    Raises:
        ConfigError: ``path`` exists but is not a journal (not SQLite, or another schema).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"SELECT {_COLUMNS} FROM steps LIMIT 0")  # noqa: S608 (constant)
        except sqlite3.DatabaseError as exc:
            reason = f"repair journal {path}: not a usable SQLite journal ({exc})"
            raise ConfigError(reason) from exc

    def intent(
        self,
        *,
        incident: str,
        target: str,
        playbook: str,
        step: int,
        action: str,
        params: Mapping[str, FactValue],
        rollback_point: Mapping[str, FactValue] | None,
        timeout: float,
        at: float,
    ) -> int:
        """Record that ``step`` is about to run; return the entry id."""
        point = None if rollback_point is None else _dump(rollback_point)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO steps (incident, target, playbook, step, action, params, "
                "rollback_point, timeout, state, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (incident, target, playbook, step, action, _dump(params), point, timeout,
                 State.INTENT.value, at, at),
            )
            return int(cur.lastrowid or 0)

    def finish(self, entry_id: int, *, ok: bool, at: float, detail: str = "") -> None:
        """Mark an entry ``done`` (``ok``) or ``failed``."""
        state = State.DONE if ok else State.FAILED
        with self._lock:
            self._db.execute(
                "UPDATE steps SET state = ?, detail = ?, updated = ? WHERE id = ?",
                (state.value, detail, at, entry_id),
            )

    def supersede(self, entry_id: int, *, at: float) -> None:
        """Mark an intent that did not take effect; its step will run under a new entry."""
        with self._lock:
            self._db.execute(
                "UPDATE steps SET state = ?, detail = ?, updated = ? WHERE id = ?",
                (State.SUPERSEDED.value, "not applied before a restart: resumed", at, entry_id),
            )

    def close_incident(self, incident: str, at: float) -> None:
        """Mark every entry of a closed incident closed (no longer in flight)."""
        with self._lock:
            self._db.execute(
                "UPDATE steps SET closed = 1, updated = ? WHERE incident = ? AND closed = 0",
                (at, incident),
            )

    def in_flight(self) -> list[Entry]:
        """Return the entries of incidents not closed, by incident then step."""
        return self._select("WHERE closed = 0 ORDER BY incident, step, id", ())

    def entries(self, incident: str) -> list[Entry]:
        """Return every entry of ``incident`` (closed ones too), in step order."""
        return self._select("WHERE incident = ? ORDER BY step, id", (incident,))

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def _select(self, where: str, args: tuple[Any, ...]) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM steps {where}", args).fetchall()  # noqa: S608 (constant clauses)
        return [_entry(r) for r in rows]


def _dump(value: Mapping[str, FactValue]) -> str:
    return json.dumps(dict(value), sort_keys=True)


def _load(text: str | None) -> dict[str, FactValue] | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(
        id=int(row[0]), incident=row[1], target=row[2], playbook=row[3], step=int(row[4]),
        action=row[5], params=_load(row[6]) or {}, rollback_point=_load(row[7]),
        timeout=float(row[8]), state=State(row[9]), detail=row[10], created=float(row[11]),
        updated=float(row[12]), closed=bool(row[13]),
    )


# -- writing the journal around executors ----------------------------------------------------


@dataclass(slots=True)
class JournalRun:
    """One repair run: where the journal's next intent goes."""

    incident: str
    playbook: str
    target: str
    steps: Sequence[StepLike]
    next_step: int
    entry: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class JournaledExecutor:
    """An executor that commits a step's intent (with its rollback point) before it runs."""

    def __init__(self, inner: Executor, journal: Journal, run: JournalRun, clock: Clock) -> None:
        self.actions = inner.actions
        self._inner, self._journal, self._run, self._clock = inner, journal, run, clock

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Capture the rollback point, then journal the intent (the healer executes next)."""
        point = self._inner.snapshot(action, target, params)
        run = self._run
        st = run.steps[run.next_step - 1] if run.next_step <= len(run.steps) else None
        timeout = float(getattr(st, "timeout_seconds", 30.0))
        with run.lock:
            run.entry = self._journal.intent(
                incident=run.incident, target=target, playbook=run.playbook,
                step=run.next_step, action=action, params=params, rollback_point=point,
                timeout=timeout, at=self._clock.now(),
            )
        return point

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Carry out the action through the wrapped executor."""
        return self._inner.execute(action, target, params)

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Restore through the wrapped executor."""
        return self._inner.restore(target, state)



# -- reconciliation ----------------------------------------------------------------------------


def reconcile(
    entry: Entry, executor: Executor | None, live: LiveView | None, now: float
) -> Verdict:
    """Decide whether an ``intent`` step took effect before the process died (rules above)."""
    if entry.state is State.DONE:
        return Verdict.APPLIED
    if entry.state is not State.INTENT or executor is None or entry.rollback_point is None:
        return Verdict.NOT_APPLIED
    point = dict(entry.rollback_point)
    try:
        current = executor.snapshot(entry.action, entry.target, entry.params)
    except ActionError:
        current = point  # cannot observe: only the target's own reports can prove an effect
    if current != point:
        return Verdict.APPLIED
    came_back = live is not None and live.seen_since(entry.target, entry.created)
    if point.get("running") is False and came_back:
        return Verdict.APPLIED
    if now - entry.created < entry.timeout:
        return Verdict.UNKNOWN
    return Verdict.NOT_APPLIED


# -- incident working copies from the record ---------------------------------------------------

OPEN_STATUSES = (Status.OPEN, Status.HEALING, Status.VERIFYING, Status.AWAITING_APPROVAL)


def restore_incidents(store: KnowledgeStore, book: IncidentBook) -> list[Incident]:
    """Rebuild the open incidents recorded in the incidents graph into ``book``.

    Restored: id, first node and pattern, opening time, status, nodes, the rank-1 root cause
    as a node, and the decision (chosen playbook and target). Signals, diagnoses and steps
    stay in the record only.
    """
    statuses = " ".join(f'"{s.value}"' for s in OPEN_STATUSES)
    res = store.query(SPARQL_PREFIXES + f"""
SELECT ?id ?status ?opened ?node ?pattern ?playbook ?target ?why ?approval WHERE {{
  GRAPH <{INCIDENTS_GRAPH}> {{
    ?inc a shk:Incident ; shk:incidentId ?id ; shk:status ?status ; shk:openedAt ?opened ;
         shk:affects ?node ; shk:matchesPattern ?pattern .
    OPTIONAL {{ ?inc shk:hasDecision ?d . ?d shk:why ?why ; shk:needsApproval ?approval .
               OPTIONAL {{ ?d shk:chosePlaybook ?playbook ; shk:target ?target }} }}
  }}
  VALUES ?status {{ {statuses} }}
}} ORDER BY ?opened""")
    out: list[Incident] = []
    for row in res.dicts():  # type: ignore[union-attr]
        iid = str(row["id"])
        if book.get(iid) is not None:
            continue
        inc = _incident(row)
        _adopt(book, inc)
        out.append(inc)
    return out


def _incident(row: Mapping[str, Any]) -> Incident:
    iid, node = str(row["id"]), local_name(row["node"])
    opened = epoch(row["opened"])
    inc = Incident(id=iid, pattern=local_name(row["pattern"]), node=node, opened=opened,
                   onset=opened, status=Status(str(row["status"])))
    inc.nodes.add(node)
    if row.get("why") is not None:
        chosen = None
        if row.get("playbook") is not None and row.get("target") is not None:
            chosen = Candidate(
                playbook=local_name(row["playbook"]), target=local_name(row["target"]), utility=0.0,
                p_success=0.0, risk="low", blast_radius=0, cost=0.0, applicable=True,
                reason="restored from the incident record",
            )
            inc.nodes.add(chosen.target)
        approval = str(row.get("approval", "false")).lower() == "true"
        inc.decision = Decision(iid, chosen, () if chosen is None else (chosen,),
                                str(row["why"]), needs_approval=approval)
    return inc


def _adopt(book: IncidentBook, inc: Incident) -> None:
    # ``open`` would write a second record: the incident is already in the graph.
    book.restore(inc)
