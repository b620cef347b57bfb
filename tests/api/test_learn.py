"""The learning router with FastAPI's TestClient over a SimpleNamespace runtime."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient wants httpx2 (as in tests/api/test_sparql.py)
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from api import errors
from api.routers import learn
from selfheal_kg.kg.loader import validate_paths
from selfheal_kg.paths import shipped

# the incident histories of tests/learn, loaded by path (tests are not a package)
_spec = importlib.util.spec_from_file_location(
    "learn_histories", Path(__file__).parents[1] / "learn" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_histories = importlib.util.module_from_spec(_spec)
sys.modules["learn_histories"] = _histories  # dataclasses look their module up there
_spec.loader.exec_module(_histories)
history_on, make_store = (
    _histories.history_on, _histories.make_store
)

LEAK = (("http.server.error.ratio", "up"), ("process.memory.usage", "up"))


@pytest.fixture
def env(tmp_path: Path) -> tuple[TestClient, Any, SimpleNamespace]:
    store = make_store("oxigraph", tmp_path)
    h = history_on(store)
    rt = SimpleNamespace(store=store, clock=h.clock, config=SimpleNamespace(api_token=None))
    app = FastAPI()
    app.state.runtime = rt
    errors.install(app)
    app.include_router(learn.router)
    return TestClient(app), h, rt


def test_resolution_draft_promote_export(env: Any, tmp_path: Path) -> None:
    client, h, _rt = env
    a = h.run(pattern="Unclassified", symptoms=LEAK)
    b = h.run(pattern="Unclassified", playbook=None, symptoms=LEAK)
    r = client.post(f"/incidents/{b.id}/resolution", json={
        "root_cause_type": "memory-leak", "playbook": "restart-service",
        "note": "heap", "by": "alice"})
    assert r.status_code == 200, r.text
    (draft,) = r.json()["drafts"]
    assert draft["support"] == 2 and sorted(draft["learned_from"]) == sorted([a.id, b.id])

    listed = client.get("/patterns", params={"status": "draft"}).json()["patterns"]
    assert [p["id"] for p in listed] == [draft["id"]]
    assert client.post("/patterns/propose").json() == {"changed": []}

    r = client.post(f"/patterns/{draft['id']}/promote", json={"by": "bob"})
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert client.get("/patterns", params={"status": "draft"}).json()["patterns"] == []

    r = client.get(f"/patterns/{draft['id']}/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/turtle")
    out = tmp_path / "x" / "patterns.ttl"
    out.parent.mkdir()
    out.write_text(r.text, encoding="utf-8")
    assert validate_paths([out], shipped("ontology")) == []


def test_false_positive_thresholds_and_report(env: Any) -> None:
    client, h, _rt = env
    inc = h.run(playbook=None, symptoms=LEAK[:1])
    r = client.post(f"/incidents/{inc.id}/false-positive", json={"by": "carol", "note": "test"})
    assert r.status_code == 200, r.text
    (adj,) = r.json()["adjustments"]
    assert (adj["old"], adj["new"]) == (0.8, 0.85)
    levels = client.get("/thresholds").json()["levels"]
    assert levels == {"checkout|http.server.error.ratio": 0.85}
    assert client.post(f"/thresholds/{adj['id']}/revert").status_code == 200
    assert client.get("/thresholds").json()["levels"] == {"checkout|http.server.error.ratio": 0.8}
    assert client.post(f"/thresholds/{adj['id']}/revert").status_code == 404

    h.run()
    rep = client.get("/reports/effectiveness").json()
    assert rep["overall"]["incidents"] == 2
    assert rep["overall"]["false_positive_rate"] == 0.5
    assert rep["overall"]["success_rate"] == 1.0


def test_bad_input_gives_clear_errors(env: Any) -> None:
    client, h, rt = env
    assert client.post("/incidents/nope/false-positive", json={"by": "x"}).status_code == 404
    assert client.post("/incidents/a%3Eb/false-positive", json={"by": "x"}).status_code == 404
    inc = h.run(playbook=None)
    r = client.post(f"/incidents/{inc.id}/resolution",
                    json={"root_cause_type": "Bad Type!", "by": "alice"})
    assert r.status_code == 422
    r = client.post(f"/incidents/{inc.id}/resolution",
                    json={"root_cause_type": "x", "by": "a\nb"})
    assert r.status_code == 422
    assert client.get("/patterns", params={"status": "weird"}).status_code == 422
    assert client.post("/patterns/Nope/promote", json={"by": "bob"}).status_code == 404
    assert client.get("/patterns/Nope/export").status_code == 404
    rt.config.api_token = "s3cret"
    assert client.post("/patterns/propose").status_code == 401
    ok = client.post("/patterns/propose", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def test_invalid_draft_promotion_is_422(env: Any) -> None:
    client, h, _rt = env
    h.run(pattern="Unclassified", symptoms=(("cpu", "sideways"),))
    (draft,) = client.post("/patterns/propose").json()["changed"]
    r = client.post(f"/patterns/{draft['id']}/promote", json={"by": "bob"})
    assert r.status_code == 422 and "direction" in r.json()["message"]
