"""The healing API on a runtime with a controllable clock and a fake executor.

The executor is a fake (it records calls); the real process executor is exercised in
tests/act/test_process.py and end to end in tests/e2e.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.clock import FakeClock
from selfheal_kg.config import Config
from selfheal_kg.model import Diagnosis, FactValue, Signal
from selfheal_kg.runtime import Runtime

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

RESTART = """id: restart-svc
name: Restart
handles: [ServiceDown]
target_types: [Service]
risk: low
cost: 1.0
requires_approval: false
steps:
  - {action: restart, params: {}, timeout_seconds: 5, retries: 0}
success:
  - {metric: health, condition: health == up, window_seconds: 1, deadline_seconds: 30}
"""

RISKY = """id: risky-fix
name: Risky fix
handles: [HighErrorRate]
target_types: [Service]
risk: high
cost: 2.0
requires_approval: true
steps:
  - {action: restart, params: {}, timeout_seconds: 5, retries: 0}
success:
  - metric: http.server.error.ratio
    condition: value <= baseline
    window_seconds: 1
    deadline_seconds: 60
"""


class FakeExec:
    actions = frozenset({"restart"})

    def __init__(self) -> None:
        self.calls: list[str] = []

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        return {"running": False}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        self.calls.append(target)
        return ActionReport(True, "done")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        return ActionReport(True, "restored")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Runtime, TestClient, FakeExec, FakeClock, Path]]:
    pbs = tmp_path / "playbooks"
    pbs.mkdir()
    (pbs / "restart.yaml").write_text(RESTART)
    (pbs / "risky.yaml").write_text(RISKY)
    clock = FakeClock(2_000_000.0)
    ex = FakeExec()
    rt = Runtime(Config(playbooks_dir=pbs, api_token=TOKEN), clock=clock, executors={"restart": ex})
    client = TestClient(create_app(rt))  # no lifespan: the test drives the ticks
    yield rt, client, ex, clock, pbs
    rt.pipeline.close()


def open_incident(rt: Runtime, pattern: str, node: str) -> str:
    now = rt.clock.now()
    return rt.book.open(Diagnosis(f"d-{node}", pattern, node, "test", (), now, now), now).id


def test_mutations_need_the_token(env: tuple) -> None:  # type: ignore[type-arg]
    rt, client, ex, _, _ = env
    inc = open_incident(rt, "ServiceDown", "svc")
    assert client.post("/heal", json={"incident": inc}).status_code == 401
    bad = client.post("/heal", json={"incident": inc}, headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401
    assert ex.calls == []


def test_dry_run_records_and_executes_nothing(env: tuple) -> None:  # type: ignore[type-arg]
    rt, client, ex, _, _ = env
    inc = open_incident(rt, "ServiceDown", "svc")
    r = client.post("/heal", json={"incident": inc, "dry_run": True}, headers=AUTH)
    assert r.status_code == 200, r.text
    rt.pipeline.wait_idle()
    assert ex.calls == []
    detail = client.get(f"/incidents/{inc}").json()
    assert detail["status"] == "resolved"
    assert detail["steps"][0]["dryRun"] is True
    assert "dry run" in detail["outcome"]["reason"]


def test_heal_refuses_bad_and_unknown_ids(env: tuple) -> None:  # type: ignore[type-arg]
    _, client, _, _, _ = env
    hostile = client.post("/heal", json={"incident": "x; rm -rf /"}, headers=AUTH)
    assert hostile.status_code == 422
    assert client.post("/heal", json={"incident": "nope"}, headers=AUTH).status_code == 404
    assert client.get("/incidents/%3Cnope%3E").status_code == 404


def test_risky_repair_waits_for_approval_then_runs(env: tuple) -> None:  # type: ignore[type-arg]
    rt, client, ex, clock, _ = env
    inc = open_incident(rt, "HighErrorRate", "svc")
    clock.advance(3.0)
    rt.pipeline.tick()
    assert client.get(f"/incidents/{inc}").json()["status"] == "awaiting-approval"
    assert ex.calls == []
    r = client.post(f"/approvals/{inc}", json={"approver": "alice"}, headers=AUTH)
    assert r.status_code == 200, r.text
    rt.pipeline.wait_idle()
    assert ex.calls == ["svc"]
    clock.advance(1.0)
    rt.pipeline.tick()  # no error-ratio signal active: the criterion holds
    detail = client.get(f"/incidents/{inc}").json()
    assert detail["status"] == "resolved"
    assert detail["approvals"][0]["approver"] == "alice"
    again = client.post(f"/approvals/{inc}", json={"approver": "bob"}, headers=AUTH)
    assert again.status_code == 404


def test_unanswered_approval_expires_into_escalation(env: tuple) -> None:  # type: ignore[type-arg]
    rt, client, ex, clock, _ = env
    inc = open_incident(rt, "HighErrorRate", "svc")
    clock.advance(3.0)
    rt.pipeline.tick()
    clock.advance(901.0)
    rt.pipeline.tick()
    detail = client.get(f"/incidents/{inc}").json()
    assert detail["status"] == "escalated"
    assert "approval expired" in detail["outcome"]["reason"]
    assert ex.calls == []


def test_playbooks_are_listed(env: tuple) -> None:  # type: ignore[type-arg]
    _, client, _, _, _ = env
    ids = [p["id"] for p in client.get("/playbooks").json()["playbooks"]]
    assert ids == ["restart-svc", "risky-fix"]
    assert client.get("/playbooks/risky-fix").json()["requires_approval"] is True
    assert client.get("/playbooks/nope").status_code == 404


def test_diagnose_ranks_records_and_lists_candidates(env: tuple) -> None:  # type: ignore[type-arg]
    rt, client, _, clock, _ = env
    now = clock.now()
    sig = Signal(
        "s1",
        "svc|http.server.error.ratio",
        "svc",
        "http.server.error.ratio",
        "alertmanager",
        0.9,
        "up",
        now - 5,
        now,
        0.5,
        0.0,
    )
    rt.pipeline.submit(signals=[sig])
    rt.pipeline.tick()
    r = client.post("/diagnose", json={"target": "svc"}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["root_causes"][0]["node"] == "svc"
    assert body["patterns"][0]["pattern"] == "HighErrorRate"
    assert [c["playbook"] for c in body["candidates"]] == ["risky-fix"]
    recorded = client.get(f"/incidents/{body['id']}").json()
    assert recorded["status"] == "diagnosed"
    assert recorded["root_causes"][0]["node"] == "svc"
    bad = client.post("/diagnose", json={"start": 10, "end": 5}, headers=AUTH)
    assert bad.status_code == 422


def test_reload_keeps_the_old_knowledge_when_a_file_is_broken(env: tuple) -> None:  # type: ignore[type-arg]
    rt, client, _, _, pbs = env
    (pbs / "broken.yaml").write_text("id: broken\nname: no steps\n")
    r = client.post("/reload", headers=AUTH)
    assert r.status_code == 422
    assert "broken" in r.json()["message"]
    assert sorted(rt.playbooks) == ["restart-svc", "risky-fix"]
    (pbs / "broken.yaml").unlink()
    (pbs / "third.yaml").write_text(RESTART.replace("restart-svc", "third"))
    r = client.post("/reload", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["playbooks"] == 3
    assert "third" in rt.playbooks


def test_healthz(env: tuple) -> None:  # type: ignore[type-arg]
    _, client, _, _, _ = env
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["open_incidents"] == 0
