from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rdflib import RDF, RDFS, Literal
from rdflib.namespace import XSD

from selfheal_kg.clock import FakeClock
from selfheal_kg.errors import ConfigError
from selfheal_kg.kg.namespaces import SHK, TOPOLOGY_GRAPH, node_iri
from selfheal_kg.kg.store import KnowledgeStore, OxigraphStore, RdflibStore
from selfheal_kg.monitor.probes import Prober, ProbeSpec, probe_specs_from_graph, run_probe

T0 = 1_700_000_000.0


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        codes = {"/health": 200, "/moved": 302, "/broken": 503}
        self.send_response(codes.get(self.path, 404))
        if self.path == "/moved":
            self.send_header("Location", "/health")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener that accepts connections (the kernel completes the handshake)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- specs ----------------------------------------------------------------------------------


def test_undeclared_targets_must_be_loopback() -> None:
    assert ProbeSpec("a", "http", "http://localhost:8080/health").address == ("localhost", 8080)
    assert ProbeSpec("a", "tcp", "[::1]:5432").address == ("::1", 5432)
    with pytest.raises(ConfigError, match="neither loopback nor a declared"):
        ProbeSpec("a", "http", "http://169.254.169.254/latest/meta-data")
    spec = ProbeSpec("a", "http", "https://checkout.internal/health", declared=True)
    assert spec.address == ("checkout.internal", 443)


@pytest.mark.parametrize(
    ("kind", "target", "reason"),
    [
        ("udp", "127.0.0.1:1", "not http or tcp"),
        ("http", "ftp://127.0.0.1/x", "not an http"),
        ("tcp", "127.0.0.1", "needs host:port"),
        ("tcp", "127.0.0.1:99999", "probe target"),
        ("http", "http:///nohost", "no host"),
    ],
)
def test_bad_specs_are_refused(kind: str, target: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        ProbeSpec("a", kind, target)  # type: ignore[arg-type]


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ConfigError, match="thresholds"):
        ProbeSpec("a", "tcp", "127.0.0.1:1", failure_threshold=0)
    with pytest.raises(ConfigError, match="period and timeout"):
        ProbeSpec("a", "tcp", "127.0.0.1:1", timeout=0)


# -- scheduling and thresholds ----------------------------------------------------------------


def test_due_honours_the_period() -> None:
    clock = FakeClock(T0)
    a = ProbeSpec("a", "tcp", "127.0.0.1:1", period=10)
    b = ProbeSpec("b", "tcp", "127.0.0.1:2", period=5)
    prober = Prober(clock, [a, b])
    assert prober.due(T0) == [a, b]
    assert prober.due(T0 + 4) == []
    assert prober.due(T0 + 5) == [b]
    assert prober.due(T0 + 10) == [a, b]


def test_down_after_failure_threshold_and_up_after_success_threshold() -> None:
    spec = ProbeSpec("db", "tcp", "127.0.0.1:1", failure_threshold=3, success_threshold=2)
    prober = Prober(FakeClock(T0), [spec])
    assert prober.record(spec, True, T0) is None  # up from the start: no transition
    assert prober.record(spec, False, T0 + 10) is None
    assert prober.record(spec, False, T0 + 20) is None
    down = prober.record(spec, False, T0 + 30)
    assert down is not None and (down.node, down.status, down.at, down.since) == (
        "db",
        "down",
        T0 + 30,
        T0 + 10,
    )
    assert prober.down() == ["db"]
    assert prober.record(spec, False, T0 + 40) is None  # reported once
    assert prober.record(spec, True, T0 + 50) is None  # one success is not enough
    up = prober.record(spec, True, T0 + 60)
    assert up is not None and (up.status, up.since) == ("up", T0 + 50)
    assert prober.down() == []


def test_a_success_resets_the_failure_streak() -> None:
    spec = ProbeSpec("db", "tcp", "127.0.0.1:1", failure_threshold=2)
    prober = Prober(FakeClock(T0), [spec])
    assert prober.record(spec, False, T0) is None
    assert prober.record(spec, True, T0 + 1) is None
    assert prober.record(spec, False, T0 + 2) is None


# -- real checks ------------------------------------------------------------------------------


def test_http_probe_against_a_real_server(http_base: str) -> None:
    assert run_probe(ProbeSpec("a", "http", f"{http_base}/health"))
    assert run_probe(ProbeSpec("a", "http", f"{http_base}/moved"))  # 3xx counts as up
    assert not run_probe(ProbeSpec("a", "http", f"{http_base}/broken"))
    assert not run_probe(ProbeSpec("a", "http", f"{http_base}/missing"))
    assert not run_probe(ProbeSpec("a", "http", f"http://127.0.0.1:{_closed_port()}/"))


def test_http_probe_times_out_on_a_silent_listener(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert not run_probe(ProbeSpec("a", "http", f"http://127.0.0.1:{port}/", timeout=0.2))


def test_tcp_probe_against_a_real_listener(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert run_probe(ProbeSpec("db", "tcp", f"127.0.0.1:{port}"))
    assert not run_probe(ProbeSpec("db", "tcp", f"127.0.0.1:{_closed_port()}"))


def test_run_due_reports_a_down_node() -> None:
    clock = FakeClock(T0)
    spec = ProbeSpec("db", "tcp", f"127.0.0.1:{_closed_port()}", failure_threshold=2)
    prober = Prober(clock, [spec])
    assert prober.run_due() == []
    assert prober.run_due() == []  # not due again before the period
    clock.advance(10)
    [change] = prober.run_due()
    assert (change.node, change.status, change.since) == ("db", "down", T0)


# -- specs from the graph ---------------------------------------------------------------------


@pytest.fixture(params=["oxigraph", "rdflib"])
def store(request: pytest.FixtureRequest) -> KnowledgeStore:
    return OxigraphStore(None) if request.param == "oxigraph" else RdflibStore()


def _node(store: KnowledgeStore, name: str, endpoint: str, origin: str = "declared") -> None:
    n = node_iri("service", name)
    store.add(
        TOPOLOGY_GRAPH,
        [
            (n, RDF.type, SHK.Service),
            (n, RDFS.label, Literal(name)),
            (n, SHK.origin, Literal(origin)),
            (n, SHK.healthEndpoint, Literal(endpoint, datatype=XSD.anyURI)),
        ],
    )


def test_probe_specs_from_declared_endpoints_only(store: KnowledgeStore) -> None:
    _node(store, "frontend", "http://shop.example:8080/health")
    _node(store, "orders-db", "tcp://127.0.0.1:5432")
    _node(store, "sneaky", "http://10.0.0.9/admin", origin="discovered")
    specs = probe_specs_from_graph(store, period=5)
    assert [(s.node, s.kind, s.target, s.period, s.declared) for s in specs] == [
        ("frontend", "http", "http://shop.example:8080/health", 5, True),
        ("orders-db", "tcp", "127.0.0.1:5432", 5, True),
    ]


def test_probe_specs_refuse_an_unknown_scheme(store: KnowledgeStore) -> None:
    _node(store, "odd", "gopher://127.0.0.1/")
    with pytest.raises(ConfigError, match=r"'odd'.*not http"):
        probe_specs_from_graph(store)
