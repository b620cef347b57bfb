"""End to end on real parts: a real shop, a real selfheal server, a real SIGKILL.

The shop's services are OS processes exporting OTLP/HTTP with the OpenTelemetry SDK to a real
uvicorn server; the test kills one and reads the outcome through ``/sparql``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import wait_for

from api.main import create_app
from api.server import ServerThread
from selfheal_kg.act.registry import by_action
from selfheal_kg.config import Config
from selfheal_kg.demo.shop import Shop, free_port
from selfheal_kg.runtime import Runtime

pytestmark = pytest.mark.e2e

PREFIX = (
    "PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>\n"
    "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n"
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Shop, Runtime, str]]:
    port = free_port()
    shop = Shop(f"http://127.0.0.1:{port}", tmp_path / "shop", export_interval=1.0)
    config = Config(port=port, topology_files=(shop.topology_file(),), tick_seconds=0.5)
    runtime = Runtime(config, executors=by_action([shop.supervisor]))
    server = ServerThread(create_app(runtime), port=port)
    server.start()
    try:
        shop.start()
        shop.start_load(20.0)
        yield shop, runtime, server.url
    finally:
        server.stop()
        shop.stop()


def sparql(url: str, query: str) -> list[dict[str, str]]:
    resp = httpx.post(f"{url}/sparql", data={"query": PREFIX + query}, timeout=10)
    assert resp.status_code == 200, resp.text
    rows = resp.json()["results"]["bindings"]
    return [{k: v["value"] for k, v in row.items()} for row in rows]


def test_killed_service_is_found_restarted_and_verified(live: tuple[Shop, Runtime, str]) -> None:
    shop, runtime, url = live
    services = set(shop.services())
    assert wait_for(lambda: services <= set(runtime.series.last_seen()), 30), "telemetry missing"
    time.sleep(12)  # a baseline for the detectors: real processes, real time
    assert sparql(url, "SELECT ?i WHERE { ?i a shk:Incident }") == [], "false positive before fault"

    old_pid = shop.supervisor.pid("inventory")
    shop.supervisor.kill("inventory")
    killed_at = time.time()

    def resolved() -> bool:
        rows = sparql(url, 'SELECT ?i WHERE { ?i a shk:Incident ; shk:status "resolved" }')
        return bool(rows)

    health = httpx.get(url + "/healthz").json
    assert wait_for(resolved, 45), f"no resolved incident; healthz: {health()}"
    healed_after = time.time() - killed_at

    rows = sparql(
        url,
        """SELECT ?id ?root ?action ?target ?ok ?success WHERE {
          ?i a shk:Incident ; shk:incidentId ?id ; shk:status "resolved" ;
             shk:hasRootCause ?rc ; shk:hasExecution ?e ; shk:hasOutcome ?o .
          ?rc shk:rank 1 ; rdfs:label ?root .
          ?e shk:action ?action ; shk:target ?target ; shk:succeeded ?ok .
          ?o shk:succeeded ?success }""",
    )
    assert rows, "resolved incident lacks its record"
    row = rows[0]
    assert row["root"] == "inventory"
    assert row["action"] == "restart"
    assert row["target"].endswith("/service/inventory")
    assert row["ok"] == "true" and row["success"] == "true"
    assert shop.supervisor.is_running("inventory")
    assert shop.supervisor.pid("inventory") != old_pid
    # the rule that fired is recorded with the diagnosis
    rules = sparql(
        url,
        """SELECT ?rule WHERE { ?i shk:hasDiagnosis ?d .
             ?d <http://www.w3.org/ns/prov#wasGeneratedBy> ?f . ?f shk:firedRule ?rule }""",
    )
    assert any("service-down" in r["rule"] or "ServiceDown" in r["rule"] for r in rules), rules
    # callers were symptoms, not causes: nothing but inventory was restarted
    executions = sparql(
        url, "SELECT ?target WHERE { ?e a shk:ActionExecution ; shk:target ?target }"
    )
    targets = {r["target"] for r in executions}
    assert targets == {row["target"]}
    assert healed_after < 30
