from __future__ import annotations

import json
import warnings
from types import SimpleNamespace
from typing import Any

import networkx as nx
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from api import errors
from api.routers import alerts
from selfheal_kg.clock import FakeClock
from selfheal_kg.model import Signal
from selfheal_kg.monitor.alerts import AlertManager

with warnings.catch_warnings():
    # Starlette warns at import when it finds httpx rather than httpx2; the client works the
    # same either way, and the project does not depend on httpx2.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

T0 = 1_700_000_000.0
TOKEN = {"Authorization": "Bearer s3cret"}


def _graph() -> nx.DiGraph:
    return nx.DiGraph([("frontend", "checkout")])


@pytest.fixture
def runtime() -> SimpleNamespace:
    clock = FakeClock(T0)
    received: list[Signal] = []
    return SimpleNamespace(
        config=SimpleNamespace(api_token="s3cret"),
        clock=clock,
        alerts=AlertManager(clock, _graph),
        received=received,
        external_signals=received.extend,
    )


@pytest.fixture
def client(runtime: SimpleNamespace) -> TestClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(alerts.router)
    app.state.runtime = runtime
    return TestClient(app)


def webhook(**alert_overrides: Any) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "warning"},
        "annotations": {},
        "startsAt": "2023-11-14T22:13:20Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "0123abcd",
        **alert_overrides,
    }
    return {
        "version": "4",
        "groupKey": "g1",
        "status": "firing",
        "receiver": "selfheal",
        "alerts": [alert],
    }


def test_webhook_hands_signals_to_the_runtime(client: TestClient, runtime: Any) -> None:
    r = client.post("/alertmanager", json=webhook(), headers=TOKEN)
    assert r.status_code == 200, r.text
    assert r.json() == {"groupKey": "g1", "firing": 1, "resolved": 0}
    [sig] = runtime.received
    assert (sig.node, sig.metric, sig.score, sig.active) == ("checkout", "HighErrorRate", 0.8, True)
    r = client.post("/alertmanager", json=webhook(status="resolved"), headers=TOKEN)
    assert r.json()["resolved"] == 1 and runtime.received[1].active is False


def test_webhook_needs_the_token(client: TestClient, runtime: Any) -> None:
    r = client.post("/alertmanager", json=webhook())
    assert r.status_code == 401
    r = client.post("/alertmanager", json=webhook(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert runtime.received == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not a JSON document"),
        (json.dumps({**webhook(), "version": "2"}).encode(), "version"),
        (json.dumps(webhook(labels={"alertname": "X"})).encode(), "alerts[0].labels"),
        (json.dumps(webhook(startsAt="soon")).encode(), "alerts[0].startsAt"),
    ],
)
def test_bad_webhook_payloads_answer_400_naming_the_field(
    client: TestClient, runtime: Any, body: bytes, needle: str
) -> None:
    r = client.post(
        "/alertmanager", content=body, headers={**TOKEN, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "TelemetryError" and needle in r.json()["message"]
    assert runtime.received == []


def test_oversized_webhook_is_refused(client: TestClient) -> None:
    body = b" " * ((1 << 20) + 1)
    r = client.post("/alertmanager", content=body, headers=TOKEN)
    assert r.status_code == 413


def _signal(node: str) -> Signal:
    return Signal(f"{node}@1", node, node, "latency", "ewma", 0.9, "up", T0, T0, 2.0, 1.0)


def test_get_alerts_shows_group_and_inhibition(client: TestClient, runtime: Any) -> None:
    root = runtime.alerts.from_signal(_signal("checkout"))
    runtime.alerts.from_signal(_signal("frontend"))
    body = client.get("/alerts").json()
    by_node = {a["node"]: a for a in body["alerts"]}
    assert by_node["frontend"]["inhibited"] is True
    assert by_node["frontend"]["inhibitedBy"] == root.fingerprint
    assert by_node["checkout"]["inhibited"] is False and by_node["checkout"]["silenced"] is False
    assert by_node["frontend"]["group"] == by_node["checkout"]["group"]
    [group] = body["groups"]
    assert group["root"] == "checkout" and group["status"] == "firing"


def test_silence_lifecycle(client: TestClient, runtime: Any) -> None:
    runtime.alerts.from_signal(_signal("checkout"))
    new = {
        "matchers": [{"name": "node", "value": "check.*", "isRegex": True}],
        "endsAt": "2023-11-14T23:13:20Z",
        "createdBy": "ops",
        "comment": "deploy",
    }
    assert client.post("/silences", json=new).status_code == 401
    r = client.post("/silences", json=new, headers=TOKEN)
    assert r.status_code == 200, r.text
    sid = r.json()["silenceID"]
    [listed] = client.get("/silences").json()["silences"]
    assert listed["id"] == sid and listed["status"]["state"] == "active"
    assert listed["matchers"][0]["isRegex"] is True
    assert client.get("/alerts").json()["alerts"][0]["silencedBy"] == [sid]
    r = client.delete(f"/silences/{sid}", headers=TOKEN)
    assert r.status_code == 200 and r.json()["silence"]["status"]["state"] == "expired"
    assert client.get("/alerts").json()["alerts"][0]["silenced"] is False
    assert client.delete("/silences/nope", headers=TOKEN).status_code == 404


def test_bad_silences_are_refused(client: TestClient) -> None:
    base = {"matchers": [{"name": "node", "value": "a"}], "createdBy": "ops"}
    r = client.post("/silences", json={**base, "endsAt": T0 - 10, "startsAt": T0}, headers=TOKEN)
    assert r.status_code == 400 and "must be after" in r.json()["message"]
    r = client.post("/silences", json={**base, "matchers": [], "endsAt": T0 + 60}, headers=TOKEN)
    assert r.status_code == 400 and "at least one matcher" in r.json()["message"]
    bad_regex = {**base, "matchers": [{"name": "node", "value": "(", "isRegex": True}]}
    r = client.post("/silences", json={**bad_regex, "endsAt": T0 + 60}, headers=TOKEN)
    assert r.status_code == 400 and "regex" in r.json()["message"]
    r = client.post("/silences", json={"matchers": "x"}, headers=TOKEN)
    assert r.status_code == 422
