"""Fixtures shared by the knowledge-graph tests: both store adapters and small topology files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from selfheal_kg.kg.store import KnowledgeStore, OxigraphStore, RdflibStore
from selfheal_kg.paths import shipped

TOPOLOGY = """\
@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .
@prefix svc: <https://w3id.org/selfheal-kg/id/service/> .
@prefix db:  <https://w3id.org/selfheal-kg/id/database/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

svc:frontend a shk:Service ; shk:serviceName "frontend" ; shk:criticality "high" ;
    shk:calls svc:checkout ;
    shk:healthEndpoint "http://127.0.0.1:8080/health"^^xsd:anyURI .
svc:checkout a shk:Service ; shk:serviceName "checkout" ; shk:dependsOn db:orders .
db:orders a shk:Database ; rdfs:label "orders" .
"""

# frontend's criticality is outside the enumeration
BAD_TOPOLOGY = TOPOLOGY.replace('shk:criticality "high"', 'shk:criticality "extreme"')


@pytest.fixture(params=["oxigraph", "rdflib", "oxigraph-disk"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KnowledgeStore]:
    """Each adapter in turn: the shared suite runs against all of them."""
    if request.param == "rdflib":
        yield RdflibStore()
    elif request.param == "oxigraph":
        yield OxigraphStore(None)
    else:
        yield OxigraphStore(tmp_path / "store")


@pytest.fixture
def topology_file(tmp_path: Path) -> Path:
    path = tmp_path / "topology.ttl"
    path.write_text(TOPOLOGY, encoding="utf-8")
    return path


@pytest.fixture
def bad_topology() -> str:
    return BAD_TOPOLOGY


@pytest.fixture
def ontology_dir() -> Path:
    return shipped("ontology")


@pytest.fixture
def playbooks_dir() -> Path:
    return shipped("playbooks")
