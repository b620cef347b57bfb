"""Crash safety end to end: SIGKILL ``selfheal serve`` mid-step, restart it, nothing repeated.

A real server supervises a small real process (``worker``) that appends a line to a file each
time it starts, comes up slowly, then reports OTLP metrics. The test starts the worker itself,
kills it, lets the server diagnose and restart it, SIGKILLs the server while the restart step
is still waiting for the worker's health check, and restarts the server on the same store and
journal. The restarted server must find the incident, see that the restart took effect (the
worker reports again) without restarting it a second time, and resolve the incident.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import wait_for

from selfheal_kg.demo.shop import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

WORKER = r'''
import json, os, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
starts, server, health_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(starts, "a") as f:
    f.write(f"{os.getpid()}\n")
time.sleep(float(os.environ.get("WORKER_SLOW", "0")))
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
threading.Thread(target=HTTPServer(("127.0.0.1", health_port), H).serve_forever,
                 daemon=True).start()
n = 0
while True:
    n += 10
    t = str(time.time_ns())
    doc = {"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "worker"}}]},
        "scopeMetrics": [{"metrics": [{"name": "jobs", "sum": {
            "aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
                {"startTimeUnixNano": "1", "timeUnixNano": t, "asInt": str(n)}]}}]}]}]}
    req = urllib.request.Request(server + "/v1/metrics", json.dumps(doc).encode(),
                                 {"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=2).read()
    except Exception:
        pass
    time.sleep(0.5)
'''

TOPOLOGY = """@prefix shk:  <https://w3id.org/selfheal-kg/ontology#> .
@prefix id:   <https://w3id.org/selfheal-kg/id/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
id:service\\/worker a shk:Service ; rdfs:label "worker" ; shk:serviceName "worker" ;
    shk:criticality "high" ; shk:origin "declared" .
"""


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port, self.health_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.starts = tmp / "starts.txt"
        (tmp / "worker.py").write_text(WORKER)
        (tmp / "topology.ttl").write_text(TOPOLOGY)
        argv = [sys.executable, str(tmp / "worker.py"), str(self.starts), self.url,
                str(self.health_port)]
        self.worker_argv = argv
        spec = {"name": "worker", "argv": argv, "env": {"WORKER_SLOW": "6"},
                "health_url": f"http://127.0.0.1:{self.health_port}/health"}
        (tmp / "processes.yaml").write_text(json.dumps([spec]))  # JSON is YAML
        self.servers: list[subprocess.Popen[bytes]] = []

    def serve(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "selfheal_kg.cli.main", "serve", "--port", str(self.port),
               "--store", str(self.tmp / "store"), "--topology", str(self.tmp / "topology.ttl"),
               "--processes", str(self.tmp / "processes.yaml")]
        env = {**os.environ, "SELFHEAL_TICK_SECONDS": "0.5"}
        with (self.tmp / f"server{len(self.servers)}.log").open("ab") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.servers.append(proc)
        assert wait_for(self.up, 30, step=0.05), self.log()
        return proc

    def up(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def sees_worker(self) -> bool:
        stats = httpx.get(self.url + "/healthz", timeout=2).json()
        return bool(stats.get("nodes", stats.get("stats", {}).get("nodes", 0)))

    def pids(self) -> list[int]:
        return [int(x) for x in self.starts.read_text().split()] if self.starts.exists() else []

    def log(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.tmp.glob("server*.log")))

    def incidents(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = httpx.get(self.url + "/incidents", timeout=5).json()[
            "incidents"]
        return rows


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        for p in s.servers:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for pid in s.pids():  # every worker leads its own session (process group)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def test_sigkill_mid_step_is_recovered_without_repeating_the_step(setup: Setup) -> None:
    first = setup.serve()
    own = subprocess.Popen(setup.worker_argv, start_new_session=True)  # the test's worker
    assert wait_for(setup.sees_worker, 20, step=0.05), setup.log()
    own.kill()
    own.wait(timeout=5)

    # the server notices the silence, diagnoses ServiceDown and restarts the worker, which
    # takes 6 s to come up: the restart step is in flight when the server is killed
    assert wait_for(lambda: len(setup.pids()) == 2, 30, step=0.05), setup.log()
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    orphan = setup.pids()[1]
    os.kill(orphan, 0)  # the worker the killed server started still runs

    setup.serve()
    [inc] = setup.incidents()
    assert inc["status"] in {"healing", "verifying", "resolved"}, inc

    def resolved() -> bool:
        return setup.incidents()[0].get("status") == "resolved"

    assert wait_for(resolved, 30, step=0.5), setup.log()
    assert len(setup.pids()) == 2, "the restart step ran twice"
    detail = httpx.get(f"{setup.url}/incidents/{inc['id']}", timeout=5).json()
    assert detail["outcome"]["succeeded"] is True
    assert [s["action"] for s in detail["steps"] if s["phase"] == "repair"] == ["restart"]
    assert any("not repeated" in s["detail"] for s in detail["steps"])
