"""Acceptance: traces from the official SDK exporter become discovered topology in the graph.

A real uvicorn server runs the real app; three services, each with its own resource and
TracerProvider, export a frontend → checkout → payment call chain in which payment queries an
uninstrumented PostgreSQL. After a few ticks ``/sparql`` shows the discovered ``shk:calls``
edges and the virtual database node, with origin "discovered" and first/last seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from api.main import create_app
from api.server import ServerThread
from selfheal_kg.clock import FakeClock
from selfheal_kg.config import Config
from selfheal_kg.demo.shop import free_port
from selfheal_kg.runtime import Runtime

PREFIX = (
    "PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>\n"
    "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n"
)
SERVICES = ("frontend", "checkout", "payment")


@dataclass
class Live:
    url: str
    clock: FakeClock
    runtime: Runtime
    providers: dict[str, TracerProvider]


@pytest.fixture
def live() -> Iterator[Live]:
    port = free_port()
    clock = FakeClock()
    runtime = Runtime(Config(port=port), clock=clock, executors={})
    server = ServerThread(create_app(runtime), port=port)
    server.start()
    providers = {s: _provider(server.url, s) for s in SERVICES}
    try:
        yield Live(server.url, clock, runtime, providers)
    finally:
        for p in providers.values():
            p.shutdown()
        server.stop()


def _provider(url: str, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=2)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _checkout_request(providers: dict[str, TracerProvider]) -> None:
    """One user request through the chain; each hop's client span parents the next server."""
    ctx = None
    for caller, callee in (("frontend", "checkout"), ("checkout", "payment"), ("payment", None)):
        tracer = providers[caller].get_tracer("shop")
        with (
            tracer.start_as_current_span("handle", context=ctx, kind=SpanKind.SERVER),
            _client_span(tracer, callee) as client,
        ):
            ctx = trace.set_span_in_context(client)


def _client_span(tracer: trace.Tracer, callee: str | None) -> trace.Span:
    if callee is not None:
        return tracer.start_as_current_span(f"POST /{callee}", kind=SpanKind.CLIENT)  # type: ignore[return-value]
    # payment → PostgreSQL: no server span will ever answer this client span
    attrs = {"db.system.name": "postgresql", "db.namespace": "payments"}
    return tracer.start_as_current_span("SELECT payments", kind=SpanKind.CLIENT, attributes=attrs)  # type: ignore[return-value]


def _sparql(url: str, query: str) -> list[dict[str, str]]:
    resp = httpx.post(f"{url}/sparql", data={"query": PREFIX + query}, timeout=10)
    assert resp.status_code == 200, resp.text
    rows = resp.json()["results"]["bindings"]
    return [{k: v["value"] for k, v in row.items()} for row in rows]


def _ticks(runtime: Runtime, n: int) -> None:
    for _ in range(n):
        runtime.tick()


def test_call_chain_and_virtual_database_become_discovered_topology(live: Live) -> None:
    _checkout_request(live.providers)
    live.clock.advance(31)  # past the pairing TTL: the database span stays unpaired
    _checkout_request(live.providers)  # the next export settles the expired spans
    _ticks(live.runtime, 5)  # discovered edges are written every 5th tick

    calls = _sparql(
        live.url,
        """SELECT ?a ?b WHERE { ?x shk:calls ?y . ?x rdfs:label ?a . ?y rdfs:label ?b .
            ?r a shk:ObservedCall ; shk:caller ?x ; shk:callee ?y ; shk:origin "discovered" }""",
    )
    assert {(r["a"], r["b"]) for r in calls} == {
        ("user", "frontend"),  # a root SERVER span is called by the virtual client "user"
        ("frontend", "checkout"),
        ("checkout", "payment"),
        ("payment", "payments"),
    }
    [db] = _sparql(
        live.url,
        """SELECT ?n ?origin ?first ?last WHERE { ?n a shk:Database ; rdfs:label "payments" ;
            shk:origin ?origin ; shk:firstSeen ?first ; shk:lastSeen ?last }""",
    )
    assert db["n"] == "https://w3id.org/selfheal-kg/id/database/payments"
    assert db["origin"] == "discovered"
    assert db["first"].startswith("2023-11-14T22:1")
    assert db["first"] <= db["last"]
    services = _sparql(
        live.url,
        'SELECT ?name WHERE { ?n a shk:Service ; shk:serviceName ?name ; shk:origin "discovered" }',
    )
    assert {r["name"] for r in services} == {"user", *SERVICES}


def test_last_seen_moves_on_while_first_seen_stays(live: Live) -> None:
    _checkout_request(live.providers)
    _ticks(live.runtime, 5)
    query = """SELECT ?first ?last WHERE { ?r a shk:ObservedCall ; shk:caller ?x ; shk:callee ?y ;
        shk:firstSeen ?first ; shk:lastSeen ?last . ?x rdfs:label "frontend" .
        ?y rdfs:label "checkout" }"""
    [before] = _sparql(live.url, query)
    live.clock.advance(60)
    _checkout_request(live.providers)
    _ticks(live.runtime, 5)
    [after] = _sparql(live.url, query)
    assert after["first"] == before["first"]
    assert after["last"] > before["last"]
