"""One suite for every KnowledgeStore adapter."""

from __future__ import annotations

import threading

import pytest
from rdflib import XSD, BNode, Literal, URIRef

from selfheal_kg.errors import QueryError
from selfheal_kg.kg.namespaces import INCIDENTS_GRAPH, SHK, TOPOLOGY_GRAPH, node_iri
from selfheal_kg.kg.store import KnowledgeStore, SelectResult, Triple

A = node_iri("service", "a")
B = node_iri("service", "b")
C = node_iri("service", "c")


def _seed(store: KnowledgeStore) -> None:
    store.add(
        TOPOLOGY_GRAPH,
        [
            (A, SHK.calls, B),
            (A, SHK.serviceName, Literal("a")),
            (A, SHK.cost, Literal("1.5", datatype=XSD.decimal)),
        ],
    )
    store.add(INCIDENTS_GRAPH, [(B, SHK.calls, C)])


def test_select_sees_union_of_named_graphs(store: KnowledgeStore) -> None:
    _seed(store)
    result = store.query(f"SELECT ?x ?y WHERE {{ ?x <{SHK.calls}> ?y }} ORDER BY ?x")
    assert isinstance(result, SelectResult)
    assert result.vars == ("x", "y")
    assert result.rows == [(A, B), (B, C)]


def test_graph_clause_selects_one_graph(store: KnowledgeStore) -> None:
    _seed(store)
    q = f"SELECT ?x WHERE {{ GRAPH <{INCIDENTS_GRAPH}> {{ ?x <{SHK.calls}> ?y }} }}"
    result = store.query(q)
    assert isinstance(result, SelectResult)
    assert result.rows == [(B,)]


def test_dicts_convert_to_python_and_unbound_is_none(store: KnowledgeStore) -> None:
    _seed(store)
    q = f"""SELECT ?name ?cost ?missing WHERE {{ ?s <{SHK.serviceName}> ?name ; <{SHK.cost}> ?cost
            OPTIONAL {{ ?s <urn:none> ?missing }} }}"""
    result = store.query(q)
    assert isinstance(result, SelectResult)
    row = result.dicts()[0]
    assert row["name"] == "a"
    assert float(row["cost"]) == 1.5  # type: ignore[arg-type]
    assert row["missing"] is None


def test_ask_and_construct(store: KnowledgeStore) -> None:
    _seed(store)
    assert store.query(f"ASK {{ <{A}> <{SHK.calls}> <{B}> }}") is True
    assert store.query(f"ASK {{ <{A}> <{SHK.calls}> <{C}> }}") is False
    triples = store.query(f"CONSTRUCT {{ ?x <urn:p> ?y }} WHERE {{ ?x <{SHK.calls}> ?y }}")
    assert isinstance(triples, list)
    assert set(triples) == {(A, URIRef("urn:p"), B), (B, URIRef("urn:p"), C)}


def test_bad_query_raises_query_error(store: KnowledgeStore) -> None:
    with pytest.raises(QueryError):
        store.query("SELEKT ?x WHERE { ?x ?y ?z }")
    with pytest.raises(QueryError):
        store.update("INSERT NONSENSE")


def test_update_count_triples_clear(store: KnowledgeStore) -> None:
    store.update(f"INSERT DATA {{ GRAPH <{TOPOLOGY_GRAPH}> {{ <{A}> <{SHK.calls}> <{C}> }} }}")
    assert store.count(TOPOLOGY_GRAPH) == 1
    assert list(store.triples(TOPOLOGY_GRAPH)) == [(A, SHK.calls, C)]
    store.clear(TOPOLOGY_GRAPH)
    assert store.count(TOPOLOGY_GRAPH) == 0


def test_literals_round_trip(store: KnowledgeStore) -> None:
    values = [Literal("plain"), Literal("hé", lang="fr"), Literal(3), Literal(True)]
    store.add(TOPOLOGY_GRAPH, [(A, URIRef(f"urn:p{i}"), v) for i, v in enumerate(values)])
    assert {o for _, _, o in store.triples(TOPOLOGY_GRAPH)} == set(values)


def test_blank_nodes_refused_with_the_triple_named(store: KnowledgeStore) -> None:
    bad: Triple = (BNode("x"), SHK.calls, B)
    with pytest.raises(ValueError, match="blank node"):
        store.add(TOPOLOGY_GRAPH, [(A, SHK.calls, B), bad])
    with pytest.raises(ValueError, match="blank node"):
        store.replace_graph(TOPOLOGY_GRAPH, [bad])
    assert store.count(TOPOLOGY_GRAPH) == 0  # nothing of the refused batch was written


def test_replace_graph_leaves_other_graphs(store: KnowledgeStore) -> None:
    _seed(store)
    store.replace_graph(TOPOLOGY_GRAPH, [(C, SHK.calls, A)])
    assert list(store.triples(TOPOLOGY_GRAPH)) == [(C, SHK.calls, A)]
    assert store.count(INCIDENTS_GRAPH) == 1


def test_replace_graph_is_atomic_for_readers(store: KnowledgeStore) -> None:
    """A reader counting the graph while it is replaced sees the old size or the new one."""
    old = [(node_iri("n", str(i)), SHK.calls, A) for i in range(300)]
    new = [(node_iri("m", str(i)), SHK.calls, B) for i in range(500)]
    store.replace_graph(TOPOLOGY_GRAPH, old)
    seen: set[int] = set()
    stop = threading.Event()
    q = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{TOPOLOGY_GRAPH}> {{ ?s ?p ?o }} }}"

    def read() -> None:
        while not stop.is_set():
            result = store.query(q)
            assert isinstance(result, SelectResult)
            seen.add(int(result.dicts()[0]["n"]))  # type: ignore[arg-type]

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(10):
        store.replace_graph(TOPOLOGY_GRAPH, new if i % 2 == 0 else old)
    stop.set()
    reader.join()
    assert seen <= {300, 500}
    assert seen


def test_to_rdflib_unions_graphs(store: KnowledgeStore) -> None:
    _seed(store)
    graph = store.to_rdflib([TOPOLOGY_GRAPH, INCIDENTS_GRAPH])
    assert (A, SHK.calls, B) in graph
    assert (B, SHK.calls, C) in graph
    assert len(graph) == 4
