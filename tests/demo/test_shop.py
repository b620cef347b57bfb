"""The demo shop: declaration, topology file, faults registry, and the real thing end to end."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import rdflib
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from selfheal_kg.act.config_file import ConfigFileExecutor
from selfheal_kg.demo import faults
from selfheal_kg.demo.load import LoadGenerator, http_get
from selfheal_kg.demo.shop import Shop, load_declaration
from selfheal_kg.errors import ActionError, FileLoadError, NotFound, UnsafeParameter
from selfheal_kg.kg.namespaces import SHK, node_iri
from selfheal_kg.kg.shacl import validate
from selfheal_kg.paths import shipped

DEMO = shipped("demo")
SERVER, CLIENT = 2, 3  # OTLP span kinds
EXPECTED_EDGES = {
    ("gateway", "frontend"),
    ("frontend", "checkout"),
    ("checkout", "payment"),
    ("checkout", "inventory"),
}


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``cond`` until true (real processes need real time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


# -- a tiny OTLP/HTTP collector --------------------------------------------------------------

_DECODERS: dict[str, Any] = {
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}


@dataclass
class Received:
    """Everything the collector got, decoded."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[str, list[Any]] = field(default_factory=lambda: {p: [] for p in _DECODERS})

    def of(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.requests[path])


class _Collector(BaseHTTPRequestHandler):
    received: Received

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        decoder = _DECODERS.get(self.path)
        if decoder is None or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404 if decoder is None else 415)
            self.end_headers()
            return
        message = decoder.FromString(body)
        with self.received.lock:
            self.received.requests[self.path].append(message)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def collector() -> Iterator[tuple[str, Received]]:
    received = Received()
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def attrs(kvs: Any) -> dict[str, Any]:
    """Flatten OTLP ``KeyValue``s to a dict of Python values."""
    out: dict[str, Any] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind is not None else None
    return out


def metric_services(received: Received, metric: str) -> dict[str, dict[str, Any]]:
    """Return ``{service.name: resource attributes}`` of services that sent ``metric``."""
    found: dict[str, dict[str, Any]] = {}
    for req in received.of("/v1/metrics"):
        for rm in req.resource_metrics:
            resource = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric and m.unit == "s" and m.histogram.data_points:
                        found[resource["service.name"]] = resource
    return found


def spans(received: Received) -> list[tuple[str, Any]]:
    """Return every received span with its service name."""
    out: list[tuple[str, Any]] = []
    for req in received.of("/v1/traces"):
        for rs in req.resource_spans:
            service = attrs(rs.resource.attributes)["service.name"]
            out.extend((service, span) for ss in rs.scope_spans for span in ss.spans)
    return out


def edges(received: Received) -> set[tuple[str, str]]:
    """Pair CLIENT spans with the SERVER spans they parent, across services."""
    clients = {
        (span.trace_id, span.span_id): service
        for service, span in spans(received)
        if span.kind == CLIENT
    }
    found = set()
    for service, span in spans(received):
        caller = clients.get((span.trace_id, span.parent_span_id))
        if span.kind == SERVER and caller is not None and caller != service:
            found.add((caller, service))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- declaration, topology, registry (fast) --------------------------------------------------


def test_declaration_has_five_services_on_three_levels() -> None:
    decl = load_declaration(DEMO / "shop" / "shop.json")
    assert {s.name for s in decl.services} == {
        "gateway",
        "frontend",
        "checkout",
        "payment",
        "inventory",
    }
    assert decl.entry == "gateway"
    assert decl.service("inventory").database == "inventory-db"


def test_topology_matches_declaration_and_has_no_ports() -> None:
    decl = load_declaration(DEMO / "shop" / "shop.json")
    graph = rdflib.Graph().parse(DEMO / "topology.ttl")
    for service in decl.services:
        node = node_iri("service", service.name)
        # payment stands for a third-party provider: no Service playbook may act on it
        kind = SHK.ExternalService if service.name == "payment" else SHK.Service
        assert (node, rdflib.RDF.type, kind) in graph
        assert graph.value(node, SHK.serviceName) == rdflib.Literal(service.name)
        assert graph.value(node, rdflib.RDFS.label) == rdflib.Literal(service.name)
        assert graph.value(node, SHK.serviceNamespace) == rdflib.Literal("shop")
        declared = {node_iri("service", peer) for peer in service.calls}
        if service.database:
            declared.add(node_iri("database", service.database))
        assert set(graph.objects(node, SHK.calls)) == declared
    db = node_iri("database", "inventory-db")
    assert (db, rdflib.RDF.type, SHK.Database) in graph
    assert not any(isinstance(o, rdflib.BNode) for o in graph.all_nodes())
    assert "127.0.0.1" not in (DEMO / "topology.ttl").read_text()


def test_topology_conforms_to_the_shipped_shapes() -> None:
    ontology_dir = shipped("ontology")
    shapes = rdflib.Graph().parse(ontology_dir / "shapes.ttl")
    ontology = rdflib.Graph().parse(ontology_dir / "selfheal.ttl")
    graph = rdflib.Graph().parse(DEMO / "topology.ttl")
    assert validate(graph, shapes, ontology=ontology) == []
    # The shapes do look at these nodes: a bad value is caught.
    graph.set((node_iri("service", "payment"), SHK.criticality, rdflib.Literal("urgent")))
    assert validate(graph, shapes, ontology=ontology) != []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "invalid shop declaration"),
        ('{"namespace": "shop", "environment": "demo", "entry": "a"}', "services"),
        (
            '{"namespace": "s", "environment": "d", "entry": "a",'
            ' "services": [{"name": "a", "calls": ["b"]}]}',
            "calls unknown",
        ),
        (
            '{"namespace": "s", "environment": "d", "entry": "a",'
            ' "services": [{"name": "a; rm -rf /"}]}',
            "must match",
        ),
        (
            '{"namespace": "s", "environment": "d", "entry": "z", "services": [{"name": "a"}]}',
            "entry",
        ),
    ],
)
def test_bad_declaration_is_refused_with_a_reason(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "shop.json"
    path.write_text(text)
    with pytest.raises(FileLoadError, match=reason) as info:
        load_declaration(path)
    assert info.value.file == str(path)


def test_unknown_fault_or_target_is_refused(tmp_path: Path) -> None:
    shop = Shop("http://127.0.0.1:9", tmp_path)  # constructed, never started
    with pytest.raises(NotFound, match="fault"):
        faults.inject(shop, "meteor", "payment")
    with pytest.raises(NotFound, match="service"):
        faults.inject(shop, "crash", "payment; touch /tmp/pwned")
    with pytest.raises(UnsafeParameter):
        faults.inject(shop, "errors", "payment", {"error_rate": 3})
    assert not any(shop.supervisor.is_running(n) for n in shop.services())


def test_service_script_refuses_bad_arguments() -> None:
    script = DEMO / "shop" / "service.py"
    for args in (
        ["--name", "x;y", "--port", "1"],
        ["--name", "a", "--port", "1", "--calls", "b"],
        ["--name", "a", "--port", "1", "--db-name", "db; DROP TABLE stock"],
    ):
        done = subprocess.run(
            [sys.executable, str(script), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert any(flag in done.stderr for flag in ("--name", "--calls", "--db-name"))


def test_load_generator_sends_and_counts() -> None:
    hits: list[str] = []

    class Counter(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200 if len(hits) % 2 else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        load = LoadGenerator(f"http://127.0.0.1:{server.server_port}/", rate=200)
        load.start()
        assert wait_until(lambda: len(hits) >= 10)
        stats = load.stop()
    finally:
        server.shutdown()
        server.server_close()
    assert stats.sent == len(hits) == stats.ok + stats.failed
    assert stats.ok > 0 and stats.failed > 0
    with pytest.raises(ValueError, match="rate"):
        LoadGenerator("http://127.0.0.1:9/", rate=0)


# -- the real shop ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_shop_end_to_end(collector: tuple[str, Received], tmp_path: Path) -> None:
    endpoint, received = collector
    with Shop(endpoint, tmp_path, export_interval=0.5) as shop:
        assert set(shop.services()) == {"gateway", "frontend", "checkout", "payment", "inventory"}
        assert http_get(shop.entry_url(), 2.0)
        shop.start_load(20)
        assert wait_until(
            lambda: len(metric_services(received, "http.server.request.duration")) == 5
        )
        assert wait_until(lambda: edges(received) >= EXPECTED_EDGES)
        stats = shop.stop_load()
        assert stats is not None and stats.ok > 0 and stats.failed == 0

        resources = metric_services(received, "http.server.request.duration")
        for name, resource in resources.items():
            assert resource["service.namespace"] == "shop"
            assert resource["deployment.environment.name"] == "demo"
            # a single instance is ``<name>-<random>``; a replica is its balancer member's
            # name (``checkout``, ``checkout-2``), so the balancer's statistics and the
            # telemetry name the same instance
            instance = resource["service.instance.id"]
            if name in shop.replica_sets:
                assert instance in shop.replica_sets[name].members(), instance
            else:
                assert instance.startswith(name + "-") and len(instance) > len(name) + 1
        assert {"gateway", "frontend", "checkout"} <= set(
            metric_services(received, "http.client.request.duration")
        )
        db_spans = [
            attrs(s.attributes)
            for svc, s in spans(received)
            if svc == "inventory" and s.kind == CLIENT
        ]
        assert any(a.get("db.system.name") == "sqlite" for a in db_spans)
        assert (tmp_path / "inventory-db.sqlite").exists()

        check_admin_faults(shop)
        check_bad_config(shop)
        check_memory(shop, received)
        check_crash(shop, received)
        pids = [shop.supervisor.pid(n) for n in shop.services()]
    assert not any(shop.supervisor.is_running(n) for n in shop.services())
    assert not any(alive(p) for p in pids if p is not None)
    shop.stop()  # idempotent


def check_admin_faults(shop: Shop) -> None:
    """Errors on payment make the gateway fail; revert heals it; bad input is refused."""
    injected = faults.inject(shop, "errors", "payment", {"error_rate": 1.0})
    assert not http_get(shop.entry_url(), 3.0)
    faults.revert(shop, injected)
    assert http_get(shop.entry_url(), 3.0)
    latency = faults.inject(shop, "latency", "inventory", {"latency_ms": 50})
    assert faults.admin_fault(shop, "inventory")["latency_ms"] == 50
    faults.revert(shop, latency)
    assert faults.admin_fault(shop, "inventory") == {
        "latency_ms": 0.0, "error_rate": 0.0, "leak_per_s": 0.0, "held_connections": 0}
    with pytest.raises(ActionError, match="400"):
        faults.admin_fault(shop, "payment", {"error_rate": 2.0})
    request = urllib.request.Request(
        shop.url("payment") + "admin/fault", data=b"[not json", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=2)
    assert info.value.code == 400
    info.value.close()


def check_bad_config(shop: Shop) -> None:
    """A bad push fails checkout's answers; a rollback by the executor heals it, no restart."""
    pid = shop.supervisor.pid("checkout")
    injected = faults.inject(shop, "bad-config", "checkout")
    assert json.loads(shop.config_file("checkout").read_text())["tax_rate"] == "twenty percent"
    assert wait_until(lambda: not http_get(shop.entry_url(), 3.0), 5.0)
    config = ConfigFileExecutor(shop.config_files())
    assert config.versions("checkout") == [1]
    assert config.execute("config_rollback", "checkout", {}).ok
    # each of checkout's two instances re-reads the file on its own (at most every 0.2 s):
    # healed when answers through both succeed in a row, not when the first one does
    assert wait_until(lambda: all(http_get(shop.entry_url(), 3.0) for _ in range(4)), 5.0)
    assert shop.supervisor.pid("checkout") == pid
    faults.revert(shop, injected)  # idempotent after the rollback
    assert json.loads(shop.config_file("checkout").read_text())["tax_rate"] == 0.2
    assert http_get(shop.entry_url(), 3.0)


def check_memory(shop: Shop, received: Received) -> None:
    """Every service exports its memory gauge; a leak runs it out and the process dies."""
    assert wait_until(lambda: gauge_services(received, "process.memory.utilization")
                      >= set(shop.services()))
    old = shop.supervisor.pid("payment")
    faults.inject(shop, "leak", "payment", {"leak_per_s": 0.5})
    assert faults.admin_fault(shop, "payment")["leak_per_s"] == 0.5
    assert wait_until(lambda: not shop.supervisor.is_running("payment"), 10.0)
    assert shop.supervisor.returncode("payment") == 137  # killed for its memory
    shop.supervisor.start("payment")
    assert shop.supervisor.wait_healthy("payment", 10.0)
    assert shop.supervisor.pid("payment") not in (None, old)
    assert faults.admin_fault(shop, "payment")["leak_per_s"] == 0.0  # a restart resets it


def gauge_services(received: Received, metric: str) -> set[str]:
    """Return the services that sent gauge ``metric`` with values in [0, 1]."""
    found: set[str] = set()
    for req in received.of("/v1/metrics"):
        for rm in req.resource_metrics:
            service = attrs(rm.resource.attributes)["service.name"]
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    points = m.gauge.data_points if m.name == metric else []
                    if points and all(0.0 <= p.as_double <= 1.0 for p in points):
                        found.add(service)
    return found


def check_crash(shop: Shop, received: Received) -> None:
    """A crash kills the process; callers answer 502 and log it; revert brings a new pid."""
    old = shop.supervisor.pid("payment")
    assert old is not None
    injected = faults.inject(shop, "crash", "payment")
    assert not shop.supervisor.is_running("payment")
    assert not alive(old)
    with urllib.request.urlopen(shop.url("gateway") + "health", timeout=2) as resp:
        assert resp.status == 200
    request = urllib.request.Request(shop.entry_url())
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=3)
    assert info.value.code == 502
    assert json.loads(info.value.read())["error"].startswith("frontend")
    info.value.close()
    assert wait_until(lambda: _logged_error(received, "checkout", "payment"))
    faults.revert(shop, injected)
    assert shop.supervisor.pid("payment") not in (None, old)
    assert http_get(shop.entry_url(), 3.0)


def _logged_error(received: Received, service: str, needle: str) -> bool:
    for req in received.of("/v1/logs"):
        for rl in req.resource_logs:
            if attrs(rl.resource.attributes)["service.name"] != service:
                continue
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    if needle in rec.body.string_value and rec.severity_number >= 17:
                        return len(rec.trace_id) == 16
    return False
