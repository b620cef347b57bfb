"""Declared topology, discovered edges, and the read helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from rdflib import Literal

from selfheal_kg.errors import TurtleSyntaxError
from selfheal_kg.kg import topology
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.namespaces import SHK, SPARQL_PREFIXES, TOPOLOGY_GRAPH, node_iri
from selfheal_kg.kg.store import KnowledgeStore, SelectResult

T0 = 1_700_000_000.0


@pytest.fixture
def loaded(
    store: KnowledgeStore, ontology_dir: Path, playbooks_dir: Path, topology_file: Path
) -> KnowledgeLoader:
    loader = KnowledgeLoader(store, ontology_dir)
    loader.load_all([topology_file], playbooks_dir)
    return loader


def test_edges_and_nodes_of_declared_topology(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    assert topology.edges(store) == [("checkout", "orders"), ("frontend", "checkout")]
    assert topology.nodes(store) == {
        "frontend": "Service",
        "checkout": "Service",
        "orders": "Database",
    }


def test_declared_nodes_get_origin_and_label(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    triples = set(store.triples(TOPOLOGY_GRAPH))
    checkout = node_iri("service", "checkout")
    assert (checkout, SHK.origin, Literal("declared")) in triples


def test_discovered_edges_are_added_with_times(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    conflicts = topology.add_discovered_edges(store, [("checkout", "payment")], T0)
    assert conflicts == []
    topology.add_discovered_edges(store, [("checkout", "payment")], T0 + 60)
    assert ("checkout", "payment") in topology.edges(store)
    assert topology.nodes(store)["payment"] == "Service"
    q = (
        SPARQL_PREFIXES
        + """SELECT ?first ?last ?origin WHERE {
        ?r a shk:ObservedCall ; shk:firstSeen ?first ; shk:lastSeen ?last ; shk:origin ?origin }"""
    )
    result = store.query(q)
    assert isinstance(result, SelectResult)
    assert len(result.rows) == 1
    first, last, origin = result.rows[0]
    assert str(origin) == "discovered"
    assert str(first).startswith("2023-11-14T22:13:20")
    assert str(last).startswith("2023-11-14T22:14:20")


def test_declared_edge_is_never_overridden(store: KnowledgeStore, loaded: KnowledgeLoader) -> None:
    before = set(store.triples(TOPOLOGY_GRAPH))
    conflicts = topology.add_discovered_edges(store, [("frontend", "checkout")], T0)
    assert [(c.caller, c.callee) for c in conflicts] == [("frontend", "checkout")]
    assert "declared" in conflicts[0].reason
    assert set(store.triples(TOPOLOGY_GRAPH)) == before


def test_edge_objects_with_callee_kind(store: KnowledgeStore, loaded: KnowledgeLoader) -> None:
    @dataclass
    class Edge:
        caller: str
        callee: str
        callee_kind: str

    topology.add_discovered_edges(store, [Edge("checkout", "cache", "database")], T0)
    assert topology.nodes(store)["cache"] == "Database"


def test_hostile_names_stay_inside_their_iri(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    evil = 'x> } ; DROP ALL ; <"'
    topology.add_discovered_edges(store, [("checkout", evil)], T0)
    assert topology.nodes(store)[evil] == "Service"
    assert topology.nodes(store)["orders"] == "Database"


def test_reload_keeps_discovered_edges(
    store: KnowledgeStore, loaded: KnowledgeLoader, topology_file: Path
) -> None:
    topology.add_discovered_edges(store, [("checkout", "payment")], T0)
    loaded.reload_topology([topology_file])
    assert ("checkout", "payment") in topology.edges(store)


def test_reload_declaring_a_discovered_node_makes_it_declared(
    store: KnowledgeStore, loaded: KnowledgeLoader, topology_file: Path, tmp_path: Path
) -> None:
    topology.add_discovered_edges(store, [("checkout", "payment")], T0)
    extra = tmp_path / "payment.ttl"
    extra.write_text(
        "@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .\n"
        "<https://w3id.org/selfheal-kg/id/service/payment> a shk:Service ;\n"
        '    shk:serviceName "payment" .\n',
        encoding="utf-8",
    )
    loaded.reload_topology([topology_file, extra])
    payment = node_iri("service", "payment")
    origins = {o for s, p, o in store.triples(TOPOLOGY_GRAPH) if s == payment and p == SHK.origin}
    assert origins == {Literal("declared")}
    assert ("checkout", "payment") in topology.edges(store)


def test_turtle_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ttl"
    bad.write_text('@prefix ex: <http://e/> .\nex:a ex:b ex:c .\nex:a ex:b "x\n', encoding="utf-8")
    with pytest.raises(TurtleSyntaxError) as info:
        topology.parse_turtle(bad)
    assert info.value.file == str(bad)
    assert info.value.line == 3
    assert f"{bad}:3" in str(info.value)


def test_blank_nodes_in_topology_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.ttl"
    path.write_text("[] <http://e/p> <http://e/o> .\n", encoding="utf-8")
    with pytest.raises(TurtleSyntaxError, match="blank node"):
        topology.parse_turtle(path)


def test_shacl_refuses_an_invalid_discovered_node_and_writes_nothing_of_it(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    before = set(store.triples(TOPOLOGY_GRAPH))
    evil = 'x> } ; DROP ALL ; <"'  # not a valid shk:serviceName
    conflicts = topology.add_discovered_edges(
        store, [("checkout", evil)], T0, shapes=loaded.shapes, ontology=loaded.ontology
    )
    assert [(c.caller, c.callee, c.kind) for c in conflicts] == [("checkout", evil, "shacl")]
    assert "serviceName" in conflicts[0].reason
    assert set(store.triples(TOPOLOGY_GRAPH)) == before


def test_shacl_refusal_leaves_the_valid_edges_of_the_batch(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    found = [("checkout", "bad name"), ("checkout", "payment"), ("payment", "bad name")]
    conflicts = topology.add_discovered_edges(
        store, found, T0, shapes=loaded.shapes, ontology=loaded.ontology
    )
    assert sorted((c.caller, c.callee) for c in conflicts) == [
        ("checkout", "bad name"),
        ("payment", "bad name"),
    ]
    assert ("checkout", "payment") in topology.edges(store)
    assert "bad name" not in topology.nodes(store)


def test_valid_database_node_with_odd_name_passes_shacl(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    @dataclass
    class Edge:
        caller: str
        callee: str
        callee_kind: str

    odd = "pay ments > db"  # a label, not a serviceName: only minLength applies
    conflicts = topology.add_discovered_edges(
        store,
        [Edge("checkout", odd, "database")],
        T0,
        shapes=loaded.shapes,
        ontology=loaded.ontology,
    )
    assert conflicts == []
    assert topology.nodes(store)[odd] == "Database"


def test_discovery_sync_reports_conflicts_and_refusals_for_healthz(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    sync = topology.DiscoverySync(store, loaded)
    assert sync.health() == {"synced_at": None, "refused_by_shacl": 0, "conflicts": []}
    sync.sync([("frontend", "checkout"), ("checkout", "bad name")], T0)
    health = sync.health()
    assert health["synced_at"] == T0
    assert health["refused_by_shacl"] == 1
    conflicts = health["conflicts"]
    assert isinstance(conflicts, list)
    assert {(c["caller"], c["callee"], c["kind"]) for c in conflicts} == {
        ("frontend", "checkout", "declared"),
        ("checkout", "bad name", "shacl"),
    }
    sync.sync([("checkout", "payment")], T0 + 5)
    assert sync.health()["conflicts"] == []  # the latest sync's conflicts only
    assert sync.health()["refused_by_shacl"] == 1  # the count is cumulative


def test_node_iris_are_the_topologys_own(store: KnowledgeStore, loaded: KnowledgeLoader) -> None:
    iris = topology.node_iris(store)
    assert iris["checkout"] == node_iri("service", "checkout")
    assert iris["orders"] == node_iri("database", "orders")


def test_an_incident_on_a_database_names_the_databases_iri(
    store: KnowledgeStore, loaded: KnowledgeLoader
) -> None:
    from selfheal_kg.incident import IncidentBook
    from selfheal_kg.kg.history import incident_iri
    from selfheal_kg.model import Diagnosis

    class Triples:
        def __init__(self) -> None:
            self.triples: list[tuple[object, object, object]] = []

        def add(self, triples: list[tuple[object, object, object]]) -> None:
            self.triples += triples

        def status(self, incident_id: str, value: str) -> None:
            pass

    rec = Triples()
    book = IncidentBook(rec)  # type: ignore[arg-type]
    book.iris = topology.node_iris(store)
    inc = book.open(Diagnosis("d", "SlowQuery", "orders", "slow-query", (), T0, T0), T0)
    assert (incident_iri(inc.id), SHK.affects, node_iri("database", "orders")) in rec.triples
    # a name the topology does not know is recorded as a service
    other = book.open(Diagnosis("e", "ServiceDown", "ghost", "service-down", (), T0, T0), T0)
    assert (incident_iri(other.id), SHK.affects, node_iri("service", "ghost")) in rec.triples
