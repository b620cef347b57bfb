"""Rules appear in the knowledge graph with the shared vocabulary, queryable by SPARQL."""

from __future__ import annotations

from typing import Any

from rdflib import Graph

from selfheal_kg.engine.rules import load_rules
from selfheal_kg.engine.to_graph import rule_iri, rule_triples
from selfheal_kg.kg.namespaces import SPARQL_PREFIXES, node_iri
from selfheal_kg.paths import shipped


def test_sparql_sees_every_shipped_rule() -> None:
    graph = Graph()
    for triple in rule_triples(load_rules(shipped("rules"))):
        graph.add(triple)
    rows = graph.query(
        SPARQL_PREFIXES
        + """
        SELECT ?id ?pattern ?action ?prio ?file WHERE {
          ?r a shk:Rule ; shk:ruleId ?id ; shk:concludes ?pattern ; shk:actionName ?action ;
             shk:priority ?prio ; shk:sourceFile ?file ; shk:description ?d ; rdfs:label ?l .
        } ORDER BY ?id"""
    )
    got = [_row(r) for r in rows]
    assert got == [
        (
            "db-memory-pressure",
            node_iri("pattern", "DatabaseMemoryPressure"),
            "diagnose",
            65,
            "db-memory.yaml",
        ),
        ("high-error-rate", node_iri("pattern", "HighErrorRate"), "diagnose", 80, "errors.yaml"),
        ("high-latency", node_iri("pattern", "HighLatency"), "diagnose", 60, "latency.yaml"),
        ("overload", node_iri("pattern", "Overload"), "diagnose", 70, "overload.yaml"),
        (
            "pool-exhaustion",
            node_iri("pattern", "PoolExhaustion"),
            "diagnose",
            95,
            "pool-exhaustion.yaml",
        ),
        (
            "resource-exhaustion",
            node_iri("pattern", "ResourceExhaustion"),
            "diagnose",
            90,
            "exhaustion.yaml",
        ),
        ("service-down", node_iri("pattern", "ServiceDown"), "diagnose", 100, "service-down.yaml"),
        ("slow-query", node_iri("pattern", "SlowQuery"), "diagnose", 75, "slow-query.yaml"),
    ]


def _row(row: Any) -> tuple[str, object, str, int, str]:
    # rdflib result rows are untyped
    return (str(row[0]), row[1], str(row[2]), int(row[3]), str(row[4]).rsplit("/", 1)[-1])


def test_rule_iris_are_minted_not_blank() -> None:
    assert str(rule_iri("a b>c")).endswith("/rule/a%20b%3Ec")
