"""End to end: a clean run of the demo shop under steady load makes selfheal do nothing.

Two minutes of Poisson load on the live shop with every executor of the demo in place: no
action may be executed and no incident may be waiting for approval; the graph is read through
``/sparql``.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from api.server import ServerThread
from selfheal_kg.act.registry import by_action
from selfheal_kg.config import Config
from selfheal_kg.demo.shop import Shop, free_port
from selfheal_kg.demo.show import shop_executors
from selfheal_kg.runtime import Runtime

pytestmark = pytest.mark.e2e

CLEAN_SECONDS = 120.0
PREFIX = "PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>\n"


def sparql(url: str, query: str) -> list[dict[str, str]]:
    resp = httpx.post(f"{url}/sparql", data={"query": PREFIX + query}, timeout=10)
    assert resp.status_code == 200, resp.text
    return [{k: v["value"] for k, v in row.items()} for row in resp.json()["results"]["bindings"]]


def test_no_action_during_a_clean_run(tmp_path: Path) -> None:
    port = free_port()
    shop = Shop(f"http://127.0.0.1:{port}", tmp_path / "shop", export_interval=1.0)
    config = Config(port=port, topology_files=(shop.topology_file(),), tick_seconds=0.5)
    runtime = Runtime(config, executors=by_action(shop_executors(shop)))
    pids: dict[str, int | None] = {}
    server = ServerThread(create_app(runtime), port=port)
    server.start()
    try:
        shop.start()
        pids = {name: shop.supervisor.pid(name) for name in shop.supervisor.names()}
        shop.start_load(20.0)
        time.sleep(CLEAN_SECONDS)
        load = shop.stop_load()
        actions = sparql(server.url, "SELECT ?e ?action WHERE { ?e a shk:ActionExecution ; "
                                     "shk:action ?action }")
        waiting = sparql(server.url, 'SELECT ?i WHERE { ?i shk:status "awaiting-approval" }')
        after = {name: shop.supervisor.pid(name) for name in shop.supervisor.names()}
    finally:
        server.stop()
        shop.stop()
    assert load is not None and load.ok > 0.9 * load.sent, load
    assert actions == [], f"actions taken during a clean run: {actions}"
    assert waiting == [], f"repairs proposed during a clean run: {waiting}"
    assert after == pids, "a process was restarted during a clean run"
    saved = sorted((tmp_path / "shop" / "config").glob("*.json.v*"))
    assert saved == [], f"a configuration file was changed during a clean run: {saved}"
