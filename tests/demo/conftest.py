"""A real load balancer (``demo/shop/lb.py``) over tiny real HTTP backends, for the demo tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.clock import SystemClock
from selfheal_kg.demo.replicas import ReplicaSet
from selfheal_kg.demo.shop import free_port
from selfheal_kg.paths import shipped


@pytest.fixture
def replica_set(tmp_path: Path) -> Iterator[ReplicaSet]:
    """Two declared instances of ``svc`` (``python -m http.server``) behind a real balancer."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "health").write_text("ok")  # http.server answers /health with this file
    supervisor = ProcessSupervisor(SystemClock(), tmp_path / "logs")

    def make(name: str) -> ProcessSpec:
        port = free_port()
        argv = (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
        return ProcessSpec(name, argv, {}, docs, f"http://127.0.0.1:{port}/health")

    lb_port = free_port()
    replicas = ReplicaSet(
        "svc", f"http://127.0.0.1:{lb_port}/", supervisor, make, declared=2, limit=4,
        health_timeout=10.0,
    )
    backends = ",".join(f"{n}={u}" for n, u in replicas.backends().items())
    argv = (sys.executable, str(shipped("demo") / "shop" / "lb.py"), "--name", "svc",
            "--port", str(lb_port), "--backends", backends)
    supervisor.add(ProcessSpec("svc-lb", argv, {}, tmp_path,
                               f"http://127.0.0.1:{lb_port}/health"))
    try:
        for name in supervisor.names():
            supervisor.start(name)
        for name in supervisor.names():
            assert supervisor.wait_healthy(name, 10.0), f"{name} did not start"
        yield replicas
    finally:
        supervisor.stop_all()
