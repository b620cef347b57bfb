"""Record the demo shop's telemetry around one fault, as a replay fixture for the tests.

    .venv/bin/python scripts/record_fixture.py crash tests/replay/crash.jsonl (then gzip -9 it)

Only metrics are kept (traces and logs make the file ten times larger and the replay tests
do not need them); the file is rewritten, never appended to.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from api.main import create_app
from api.server import ServerThread
from selfheal_kg.act.registry import by_action
from selfheal_kg.config import Config
from selfheal_kg.demo import faults
from selfheal_kg.demo.shop import Shop, free_port
from selfheal_kg.monitor.recording import JsonlRecorder
from selfheal_kg.runtime import Runtime


def main(fault: str, out: Path, target: str = "inventory", warmup: float = 20.0) -> int:
    out.unlink(missing_ok=True)
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="selfheal-record-"))
    shop = Shop(f"http://127.0.0.1:{port}", work, export_interval=1.0)
    rt = Runtime(
        Config(port=port, topology_files=(shop.topology_file(),)),
        executors=by_action([shop.supervisor]),
    )
    rt.intake.recorder = JsonlRecorder(out, rt.clock, signals={"metrics"})
    server = ServerThread(create_app(rt), port=port)
    server.start()
    try:
        shop.start()
        shop.start_load(20.0)
        time.sleep(warmup)
        faults.inject(shop, fault, target)
        time.sleep(15.0)
    finally:
        server.stop()
        shop.stop()
    print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
