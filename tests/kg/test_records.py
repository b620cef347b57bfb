"""The incident record written by the book reads back through SPARQL on both stores."""

from __future__ import annotations

import pytest

from selfheal_kg.incident import IncidentBook, Recorder, Status
from selfheal_kg.kg import records
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH
from selfheal_kg.kg.store import KnowledgeStore, OxigraphStore, RdflibStore
from selfheal_kg.model import (
    Candidate,
    Decision,
    Diagnosis,
    Outcome,
    RootCause,
    Signal,
    StepResult,
)


@pytest.fixture(params=["oxigraph", "rdflib"])
def store(request: pytest.FixtureRequest) -> KnowledgeStore:
    return OxigraphStore(None) if request.param == "oxigraph" else RdflibStore()


def book_on(store: KnowledgeStore) -> IncidentBook:
    return IncidentBook(
        Recorder(
            lambda triples: store.add(INCIDENTS_GRAPH, triples),
            lambda inc, value: records.set_status(store, inc, value),
        )
    )


def test_full_incident_round_trip(store: KnowledgeStore) -> None:
    book = book_on(store)
    sig = Signal(
        "s1",
        "inv|rate",
        "inv",
        "http.server.request.rate",
        "robust_z",
        0.95,
        "down",
        99.0,
        100.0,
        0.0,
        20.0,
    )
    diag = Diagnosis(
        "d1",
        "ServiceDown",
        "inv",
        "service-down",
        ({"id": "health:inv", "type": "health", "onset": 99.0},),
        101.0,
        99.0,
    )
    inc = book.open(diag, 101.0)
    book.add_signals(inc, [sig, sig])
    book.set_root_causes(inc, [RootCause("inv", 1, 0.9, ("fe", "co", "inv"), ("s1",), "leaf")])
    cand = Candidate("restart-service", "inv", 0.8, 0.9, "low", 3, 1.0, True, "best")
    book.set_decision(inc, Decision(inc.id, cand, (cand,), "because"), 103.0)
    book.set_status(inc, Status.HEALING)
    book.add_step(
        inc,
        StepResult(
            1,
            "restart",
            "inv",
            {},
            103.0,
            104.0,
            True,
            "pid 42",
            rollback_point={"running": False, "pid": 0},
        ),
    )
    book.close(inc, Outcome(inc.id, True, 106.0, "verified"), 106.0, Status.RESOLVED)

    listed = records.list_incidents(store, None, 10)
    assert len(listed) == 1
    assert listed[0]["status"] == "resolved"
    assert listed[0]["root"] == "inv"
    assert listed[0]["playbook"] == "restart-service"
    assert records.list_incidents(store, "open", 10) == []

    detail = records.incident_detail(store, inc.id)
    assert len(detail["signals"]) == 1
    assert detail["root_causes"][0]["path"] == "fe -> co -> inv"
    assert detail["decision"][0]["why"] == "because"
    assert detail["steps"][0]["action"] == "restart"
    assert '"running": false' in detail["steps"][0]["state"]
    assert detail["outcome"]["succeeded"] is True
    assert float(detail["outcome"]["timeToRecover"]) == pytest.approx(7.0)
    assert detail["diagnoses"][0]["rule"].endswith("/rule/service-down")


def test_status_is_replaced_not_accumulated(store: KnowledgeStore) -> None:
    book = book_on(store)
    diag = Diagnosis("d1", "ServiceDown", "a", "r", (), 1.0, 1.0)
    inc = book.open(diag, 1.0)
    book.set_status(inc, Status.HEALING)
    book.set_status(inc, Status.VERIFYING)
    rows = store.query(
        f"SELECT ?s WHERE {{ <https://w3id.org/selfheal-kg/id/incident/{inc.id}> "
        "<https://w3id.org/selfheal-kg/ontology#status> ?s }"
    ).dicts()  # type: ignore[union-attr]
    assert rows == [{"s": "verifying"}]


def test_unknown_incident_is_not_found(store: KnowledgeStore) -> None:
    from selfheal_kg.errors import NotFound

    with pytest.raises(NotFound):
        records.incident_detail(store, "nope")


def test_incident_record_conforms_to_the_shapes(store: KnowledgeStore) -> None:
    import rdflib

    from selfheal_kg.kg.shacl import validate
    from selfheal_kg.paths import shipped

    test_full_incident_round_trip(store)
    shapes = rdflib.Graph().parse(shipped("ontology") / "shapes.ttl")
    onto = rdflib.Graph().parse(shipped("ontology") / "selfheal.ttl")
    data = store.to_rdflib([INCIDENTS_GRAPH])
    assert len(data) > 50
    assert validate(data, shapes, ontology=onto) == []
    # and the shapes do bite: a score outside [0, 1] is refused
    bad = rdflib.Graph()
    for t in data:
        bad.add(t)
    sig = next(
        s
        for s, _, o in data.triples((None, rdflib.RDF.type, None))
        if str(o).endswith("#SignalRecord")
    )
    score = rdflib.URIRef("https://w3id.org/selfheal-kg/ontology#score")
    bad.remove((sig, score, None))
    bad.add((sig, score, rdflib.Literal("1.5", datatype=rdflib.XSD.decimal)))
    violations = validate(bad, shapes, ontology=onto)
    assert any("score" in (v.path or "") for v in violations)
