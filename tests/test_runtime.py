"""The runtime: composition from one Config, file watching, and refusing bad files at start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from selfheal_kg.clock import FakeClock
from selfheal_kg.config import Config
from selfheal_kg.errors import FileLoadError
from selfheal_kg.paths import shipped
from selfheal_kg.runtime import Runtime


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    d = tmp_path / "playbooks"
    shutil.copytree(shipped("playbooks"), d)
    return d


def test_changed_files_are_picked_up_and_broken_ones_refused(playbooks: Path) -> None:
    rt = Runtime(Config(playbooks_dir=playbooks), clock=FakeClock(), executors={})
    try:
        before = set(rt.playbooks)
        src = (playbooks / "restart-service.yaml").read_text()
        (playbooks / "restart-again.yaml").write_text(
            src.replace("id: restart-service", "id: restart-again")
        )
        for _ in range(5):
            rt.tick()
        assert set(rt.playbooks) == before | {"restart-again"}
        assert rt.last_reload["ok"] is True

        (playbooks / "broken.yaml").write_text("id: broken\nsteps: not-a-list\n")
        for _ in range(5):
            rt.tick()
        assert set(rt.playbooks) == before | {"restart-again"}
        assert rt.last_reload["ok"] is False
        assert "broken.yaml" in rt.last_reload["error"]
        rows = rt.store.query(
            "PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>\n"
            "SELECT ?id WHERE { ?p shk:playbookId ?id }"
        ).dicts()  # type: ignore[union-attr]
        assert {r["id"] for r in rows} == before | {"restart-again"}
    finally:
        rt.pipeline.close()


def test_a_broken_file_at_start_is_refused_with_its_name(playbooks: Path) -> None:
    (playbooks / "bad.yaml").write_text("id: [unclosed\n")
    with pytest.raises(FileLoadError) as err:
        Runtime(Config(playbooks_dir=playbooks), clock=FakeClock(), executors={})
    assert "bad.yaml" in str(err.value)


def test_escalations_page_a_human_and_alert_groups_are_notified() -> None:
    from selfheal_kg.model import Diagnosis, Signal
    from selfheal_kg.monitor.notify import RecordingNotifier

    clock = FakeClock(5_000.0)
    rt = Runtime(Config(), clock=clock, executors={})  # nothing to act with: escalation
    notifier = RecordingNotifier()
    rt.notifier = notifier
    try:
        now = clock.now()
        sig = Signal("s1", "svc|http.server.error.ratio", "svc", "http.server.error.ratio",
                     "alertmanager", 0.9, "up", now, now, 0.5, 0.0)
        rt.pipeline.submit(signals=[sig])
        rt.tick()
        rt.book.open(Diagnosis("d", "ServiceDown", "svc", "t", (), now, now), now)
        # nothing applies: escalated once the wait for more evidence is over
        for _ in range(8):
            clock.advance(1.0)
            rt.tick()
        groups = {n.group_id for n in notifier.sent}
        assert any(g.startswith("incident:") for g in groups), groups
        assert any(not g.startswith(("incident:", "page:")) for g in groups), groups
    finally:
        rt.pipeline.close()


def test_executors_are_closed_once_each_by_the_runtime_that_built_them() -> None:
    import asyncio

    class Closing:
        actions = frozenset({"a", "b"})

        def __init__(self) -> None:
            self.closed = 0

        def close(self) -> None:
            self.closed += 1

    ex = Closing()
    rt = Runtime(Config(), clock=FakeClock(), executors={"a": ex, "b": ex})  # type: ignore[dict-item]
    rt.close_executors()
    assert ex.closed == 1

    async def start_stop() -> None:
        task = asyncio.create_task(asyncio.sleep(3600))
        await rt.stop_background(task)

    # given executors belong to the caller: stopping the runtime leaves them open
    asyncio.run(start_stop())
    assert ex.closed == 1


def test_the_databases_of_the_sql_executors_are_watched(tmp_path: Path) -> None:
    from selfheal_kg.act.sql import SqlDatabase, SqlExecutor

    sql = SqlExecutor({
        "orders-db": SqlDatabase("postgresql", "postgresql://u@127.0.0.1:1/orders"),
        "stock-db": SqlDatabase("sqlite", str(tmp_path / "stock.sqlite")),
    })
    rt = Runtime(Config(), clock=FakeClock(), executors={a: sql for a in sql.actions})
    # PostgreSQL has statistics to poll; an SQLite file has none
    assert list(rt.dbstats.targets) == ["orders-db"]
    assert rt.dbstats.skipped == ("stock-db",)
