"""Record the demo shop's telemetry around one fault, as a gzipped replay fixture for the tests.

    .venv/bin/python scripts/record_fixture.py FAULT tests/replay/FAULT.jsonl.gz

Starts the live shop and a selfheal server in dry-run (it detects, diagnoses and decides, but
acts on nothing, so what is recorded does not depend on how well it did), waits until every
service reports, records ``WARMUP`` seconds of baseline (so the fault is injected ``WARMUP``
seconds after the first recorded request), injects the fault on its scenario's
target (``SCENARIOS`` in ``selfheal_kg/demo/show.py``), keeps it for the fault's duration,
reverts it (the recovery) and records ``RECOVERY`` more seconds. Only metrics are kept (traces
and logs make the file ten times larger and the replay tests do not need them); the file is
rewritten, never appended to.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from api.main import create_app
from api.server import ServerThread
from selfheal_kg.demo import faults
from selfheal_kg.demo.shop import Shop, free_port
from selfheal_kg.demo.show import SCENARIOS, demo_config
from selfheal_kg.monitor.recording import JsonlRecorder
from selfheal_kg.runtime import Runtime

WARMUP = 20.0
RECOVERY = 10.0
# how long each fault stays in place: long enough for the pipeline to decide (a leak is
# predicted ~30 s after it starts; a slow query's diagnosis waits for both of its signals)
FAULT_SECONDS = {"leak": 45.0, "dropped-index": 30.0, "overload": 25.0}
DEFAULT_FAULT_SECONDS = 20.0


def main(fault: str, out: Path) -> int:
    """Record ``fault`` into ``out`` (gzipped JSON lines); return the exit status."""
    if fault not in SCENARIOS:
        print(f"no demo fault named {fault!r}; known: {', '.join(sorted(SCENARIOS))}")
        return 2
    target = SCENARIOS[fault][0]
    work = Path(tempfile.mkdtemp(prefix="selfheal-record-"))
    raw = work / "recording.jsonl"
    port = free_port()
    shop = Shop(f"http://127.0.0.1:{port}", work / "shop", export_interval=1.0)
    rt = Runtime(demo_config(shop, port, tick_seconds=1.0).with_overrides(dry_run=True))
    recorder = JsonlRecorder(raw, rt.clock, signals={"metrics"})
    server = ServerThread(create_app(rt), port=port)
    server.start()
    try:
        shop.start()
        shop.start_load(20.0)
        _wait_for_telemetry(rt, set(shop.services()))
        rt.intake.recorder = recorder
        time.sleep(WARMUP)
        injected = faults.inject(shop, fault, target)
        print(f"injected {fault} on {target}", flush=True)
        time.sleep(FAULT_SECONDS.get(fault, DEFAULT_FAULT_SECONDS))
        faults.revert(shop, injected)
        print(f"reverted {fault}", flush=True)
        time.sleep(RECOVERY)
    finally:
        server.stop()
        shop.stop()
    recorder.close()
    write_fixture(raw, out)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{out}: {out.stat().st_size} bytes")
    return 0


def write_fixture(raw: Path, out: Path) -> None:
    """Gzip ``raw`` into ``out``, cut where the first service stopped reporting.

    The services stop exporting at slightly different times; a replay ticking past the
    ragged end would see the ones that stopped first as down (a ``ServiceDown`` incident
    that never happened).
    """
    lines = raw.read_text(encoding="utf-8").splitlines()
    last: dict[str, float] = {}
    for line in lines:
        rec = json.loads(line)
        for service in _services(rec["body"]):
            last[service] = rec["t"]
    end = min(last.values(), default=0.0)
    kept = [line for line in lines if json.loads(line)["t"] <= end]
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as dst:
        dst.write("\n".join(kept) + "\n")


def _services(body: dict[str, Any]) -> list[str]:
    """Return the ``service.name`` of each resource in an OTLP-JSON metrics request."""
    return [
        str(attr["value"].get("stringValue"))
        for rm in body.get("resourceMetrics", [])
        for attr in rm.get("resource", {}).get("attributes", [])
        if attr.get("key") == "service.name"
    ]


def _wait_for_telemetry(rt: Runtime, services: set[str], timeout: float = 30.0) -> None:
    """Wait until every service has sent metrics, so the baseline starts complete."""
    deadline = time.monotonic() + timeout
    while not services <= set(rt.series.last_seen()):
        if time.monotonic() > deadline:
            raise SystemExit(f"no telemetry from {sorted(services - set(rt.series.last_seen()))}")
        time.sleep(0.5)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} FAULT OUT.jsonl.gz")
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
