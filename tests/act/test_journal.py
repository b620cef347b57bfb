"""The repair journal: durable intents, reconciliation rules, incidents rebuilt from the record."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.journal import Journal, State, Verdict, reconcile, restore_incidents
from selfheal_kg.errors import ActionError, ConfigError
from selfheal_kg.incident import IncidentBook, Recorder, Status
from selfheal_kg.kg import records
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH
from selfheal_kg.kg.store import OxigraphStore
from selfheal_kg.model import Candidate, Decision, Diagnosis, FactValue, Outcome


class FakeProc:
    """A process executor whose state the test sets."""

    actions = frozenset({"restart"})

    def __init__(self, pid: int = 0, *, broken: bool = False) -> None:
        self.pid = pid
        self.broken = broken

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        if self.broken:
            raise ActionError(action, target, "cannot look")
        return {"running": self.pid > 0, "pid": self.pid}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        raise AssertionError("reconcile must never execute")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        raise AssertionError("reconcile must never restore")


class Live:
    def __init__(self, seen: dict[str, float] | None = None) -> None:
        self.seen = seen or {}

    def seen_since(self, node: str, t: float) -> bool:
        return self.seen.get(node, float("-inf")) > t

    def signal_active(self, node: str, metric: str) -> bool:
        return False


def write_intent(j: Journal, point: dict[str, FactValue] | None, at: float = 100.0) -> int:
    return j.intent(
        incident="inc-1", target="api", playbook="restart-service", step=1, action="restart",
        params={"timeout": 5}, rollback_point=point, timeout=20.0, at=at,
    )


def test_intent_done_and_closed_round_trip(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    eid = write_intent(j, {"running": True, "pid": 41})
    [e] = j.in_flight()
    assert (e.id, e.state, e.step, e.action) == (eid, State.INTENT, 1, "restart")
    assert e.rollback_point == {"running": True, "pid": 41}
    assert e.params == {"timeout": 5}
    j.finish(eid, ok=True, at=101.0, detail="pid 42")
    assert j.in_flight()[0].state is State.DONE
    j.close_incident("inc-1", 102.0)
    assert j.in_flight() == []
    assert [x.closed for x in j.entries("inc-1")] == [True]


def test_an_intent_survives_kill_9_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from selfheal_kg.act.journal import Journal\n"
        "j = Journal(Path(sys.argv[1]))\n"
        "j.intent(incident='inc-9', target='db', playbook='p', step=2, action='restart',"
        " params={}, rollback_point={'running': False, 'pid': 0}, timeout=10.0, at=5.0)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], check=False, timeout=30)
    assert proc.returncode == -9
    [e] = Journal(path).in_flight()
    assert (e.incident, e.step, e.state) == ("inc-9", 2, State.INTENT)


def test_a_file_that_is_not_a_journal_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "j.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ConfigError, match=r"j\.sqlite"):
        Journal(bad)


def test_a_changed_snapshot_means_applied(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    write_intent(j, {"running": True, "pid": 41})
    [e] = j.in_flight()
    assert reconcile(e, FakeProc(pid=77), None, now=101.0) is Verdict.APPLIED


def test_an_unchanged_snapshot_is_unknown_until_the_step_timeout_then_not_applied(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path / "j.sqlite")
    write_intent(j, {"running": False, "pid": 0}, at=100.0)
    [e] = j.in_flight()
    assert reconcile(e, FakeProc(pid=0), Live(), now=110.0) is Verdict.UNKNOWN
    assert reconcile(e, FakeProc(pid=0), Live(), now=121.0) is Verdict.NOT_APPLIED


def test_a_down_target_reporting_since_the_intent_means_applied(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    write_intent(j, {"running": False, "pid": 0}, at=100.0)
    [e] = j.in_flight()
    assert reconcile(e, FakeProc(pid=0), Live({"api": 99.0}), now=130.0) is Verdict.NOT_APPLIED
    assert reconcile(e, FakeProc(pid=0), Live({"api": 103.0}), now=130.0) is Verdict.APPLIED
    # the supervisor cannot look any more, but the target's own reports prove the effect
    assert reconcile(e, FakeProc(broken=True), Live({"api": 103.0}), 130.0) is Verdict.APPLIED


def test_no_rollback_point_or_no_executor_means_not_applied(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    write_intent(j, None)
    [e] = j.in_flight()
    assert reconcile(e, FakeProc(pid=5), None, now=101.0) is Verdict.NOT_APPLIED
    write_intent(j, {"running": True, "pid": 1})
    e2 = j.in_flight()[-1]
    assert reconcile(e2, None, None, now=101.0) is Verdict.NOT_APPLIED


def make_book(store: OxigraphStore) -> IncidentBook:
    return IncidentBook(Recorder(
        lambda t: store.add(INCIDENTS_GRAPH, t),
        lambda inc, v: records.set_status(store, inc, v),
    ))


def test_open_incidents_are_rebuilt_from_the_record() -> None:
    store = OxigraphStore(None)
    book = make_book(store)
    diag = Diagnosis("d1", "ServiceDown", "inventory", "service-down", (), 1000.0, 995.0)
    healing = book.open(diag, 1000.0)
    chosen = Candidate("restart-service", "inventory", 0.9, 0.9, "low", 1, 1.0, True, "ok")
    book.set_decision(healing, Decision(healing.id, chosen, (chosen,), "best utility"), 1001.0)
    book.set_status(healing, Status.HEALING)
    closed = book.open(Diagnosis("d2", "ServiceDown", "cart", "r", (), 1002.0, 1002.0), 1002.0)
    book.close(closed, Outcome(closed.id, True, 1003.0, "fine"), 1003.0, Status.RESOLVED)

    fresh = make_book(store)
    [inc] = restore_incidents(store, fresh)
    assert inc.id == healing.id and inc.status is Status.HEALING
    assert (inc.node, inc.pattern) == ("inventory", "ServiceDown")
    assert inc.opened == pytest.approx(1000.0)
    assert inc.decision is not None and inc.decision.chosen is not None
    assert (inc.decision.chosen.playbook, inc.decision.chosen.target) == (
        "restart-service", "inventory")
    assert fresh.get(healing.id) is inc and fresh.get(closed.id) is None
    assert restore_incidents(store, fresh) == [], "restoring twice adds nothing"
