"""The slow-query case on PostgreSQL: the live shop's inventory reads a PostgreSQL table.

Skipped without SELFHEAL_PG_DSN (CI starts PostgreSQL 15). Each run works in a schema of its
own (``search_path`` in the conninfo the inventory and the SQL executor use), dropped after.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support import wait_for

from api.main import create_app
from api.server import ServerThread
from selfheal_kg.act.registry import by_action
from selfheal_kg.act.sql import SqlExecutor
from selfheal_kg.demo import database, faults
from selfheal_kg.demo.shop import Shop, free_port
from selfheal_kg.demo.show import SCENARIOS, demo_config, shop_executors
from selfheal_kg.incident import Incident
from selfheal_kg.model import Outcome
from selfheal_kg.runtime import Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

WARMUP = 12.0
DEADLINE = 60.0

def test_dropped_index_on_postgres_is_found_and_recreated(
    pg_schema_dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    shop = Shop(f"http://127.0.0.1:{port}", tmp_path / "shop", db_dsn=pg_schema_dsn)
    executors = shop_executors(shop)
    runtime = Runtime(demo_config(shop, port, tick_seconds=0.5), executors=by_action(executors))
    closed: dict[str, tuple[Incident, Outcome]] = {}
    lock = threading.Lock()

    def on_event(kind: str, payload: dict[str, object]) -> None:
        inc, out = payload.get("incident"), payload.get("outcome")
        if kind == "outcome" and isinstance(inc, Incident) and isinstance(out, Outcome):
            with lock:
                closed[inc.id] = (inc, out)

    runtime.on_event(on_event)
    server = ServerThread(create_app(runtime), port=port)
    server.start()
    try:
        shop.start()
        shop.start_load(20.0)
        db = database.database_of(shop, "inventory")
        assert db.dialect == "postgresql"
        assert database.INDEX in database.lookup_indexes(db)
        services = set(shop.services())
        assert wait_for(lambda: services <= set(runtime.series.last_seen()), 30), "no telemetry"
        time.sleep(WARMUP)
        target, expected = SCENARIOS["dropped-index"]
        faults.inject(shop, "dropped-index", target)

        def rooted() -> tuple[Incident, Outcome] | None:
            with lock:
                return next((v for v in closed.values() if v[0].root == expected), None)

        assert wait_for(rooted, DEADLINE), (
            f"no incident rooted at {expected}; closed: "
            f"{[([c.node for c in i.root_causes], o.reason) for i, o in closed.values()]}"
        )
        found = rooted()
        assert found is not None
        inc, outcome = found
        assert outcome.success, outcome.reason
        assert inc.decision is not None and inc.decision.chosen is not None
        assert inc.decision.chosen.playbook == "add-missing-index"
        assert "shk_stock_sku_idx" in database.lookup_indexes(db)
        assert database.INDEX not in database.lookup_indexes(db)
    finally:
        server.stop()
        shop.stop()
        for ex in executors:
            if isinstance(ex, SqlExecutor):
                ex.close()
