"""``/sparql`` through FastAPI's TestClient (SPARQL 1.1 Protocol)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient wants httpx2 (not a project dependency yet);
    # the client works with httpx, so the import-time warning is not ours to fail on.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from api.routers import sparql
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.namespaces import KNOWLEDGE_GRAPH
from selfheal_kg.kg.store import OxigraphStore
from selfheal_kg.paths import shipped

Q = """PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>
SELECT ?id ?cost WHERE { ?p a shk:Playbook ; shk:playbookId ?id ; shk:cost ?cost } ORDER BY ?id"""


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    store = OxigraphStore(None)
    KnowledgeLoader(store, shipped("ontology")).load_all([], shipped("playbooks"))
    app = FastAPI()
    app.state.runtime = SimpleNamespace(store=store)
    app.include_router(sparql.router)
    with TestClient(app) as c:
        yield c


def _ids(doc: dict[str, object]) -> list[str]:
    bindings = doc["results"]["bindings"]  # type: ignore[index]
    return [b["id"]["value"] for b in bindings]


def test_get_returns_sparql_json(client: TestClient, shipped_playbook_ids: list[str]) -> None:
    r = client.get("/sparql", params={"query": Q})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/sparql-results+json")
    doc = r.json()
    assert doc["head"]["vars"] == ["id", "cost"]
    assert _ids(doc) == shipped_playbook_ids
    cost = doc["results"]["bindings"][0]["cost"]
    assert cost["datatype"] == "http://www.w3.org/2001/XMLSchema#decimal"


def test_post_form_and_direct_body(client: TestClient) -> None:
    form = client.post("/sparql", data={"query": Q})
    direct = client.post("/sparql", content=Q, headers={"content-type": "application/sparql-query"})
    assert form.status_code == direct.status_code == 200
    assert _ids(form.json()) == _ids(direct.json())


def test_csv_by_accept(client: TestClient) -> None:
    r = client.get("/sparql", params={"query": Q}, headers={"accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "id,cost"
    assert "restart-service,1" in r.text


def test_ask(client: TestClient) -> None:
    r = client.get(
        "/sparql", params={"query": f"ASK {{ GRAPH <{KNOWLEDGE_GRAPH}> {{ ?s ?p ?o }} }}"}
    )
    assert r.json() == {"head": {}, "boolean": True}


def test_bad_query_is_400_with_message(client: TestClient) -> None:
    r = client.get("/sparql", params={"query": "SELECT ?x WHERE { ?x"})
    assert r.status_code == 400
    assert r.json()["error"] == "bad SPARQL query"
    assert r.json()["detail"]


def test_update_refused(client: TestClient, shipped_playbook_ids: list[str]) -> None:
    for body in ("DROP ALL", f"CLEAR GRAPH <{KNOWLEDGE_GRAPH}>"):
        r = client.post(
            "/sparql", content=body, headers={"content-type": "application/sparql-query"}
        )
        assert r.status_code == 400
        assert "read-only" in r.json()["detail"]
    assert client.get("/sparql", params={"query": Q}).status_code == 200  # nothing dropped
    assert _ids(client.get("/sparql", params={"query": Q}).json()) == shipped_playbook_ids


def test_missing_query_is_400(client: TestClient) -> None:
    r = client.get("/sparql")
    assert r.status_code == 400
    assert "missing query" in r.json()["detail"]
