"""Escalation policies, their ontology terms and shapes, and the names alerts.py re-exports."""

from __future__ import annotations

import pytest
import rdflib
from rdflib import RDF, Literal, URIRef
from rdflib.namespace import XSD

from selfheal_kg.errors import ConfigError
from selfheal_kg.kg import shacl
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.namespaces import KNOWLEDGE_GRAPH, SHK, node_iri
from selfheal_kg.kg.store import RdflibStore
from selfheal_kg.monitor import alerts, escalation, notify
from selfheal_kg.paths import shipped


@pytest.fixture(scope="module")
def loader() -> KnowledgeLoader:
    return KnowledgeLoader(RdflibStore(), shipped("ontology"))


def _policy(after: Literal, name: str = "page") -> tuple[rdflib.Graph, URIRef]:
    g = rdflib.Graph()
    policy, level = node_iri("escalation", "default"), node_iri("escalation", "default", name)
    g.add((policy, RDF.type, SHK.EscalationPolicy))
    g.add((policy, SHK.hasLevel, level))
    g.add((level, RDF.type, SHK.EscalationLevel))
    g.add((level, SHK.levelName, Literal(name)))
    g.add((level, SHK.afterSeconds, after))
    g.add((level, SHK.levelAction, Literal("page")))
    return g, level


def test_old_import_path_still_names_the_same_objects() -> None:
    assert alerts.EscalationPolicy is escalation.EscalationPolicy
    assert alerts.policy_from_graph is escalation.policy_from_graph
    assert alerts.WebhookNotifier is notify.WebhookNotifier
    assert alerts.Notification is notify.Notification


def test_ontology_declares_the_escalation_terms(loader: KnowledgeLoader) -> None:
    for term in ("EscalationPolicy", "EscalationLevel", "hasLevel", "levelName"):
        assert (SHK[term], rdflib.RDFS.label, None) in loader.ontology
    for term in ("afterSeconds", "levelAction"):
        assert (SHK[term], rdflib.RDFS.comment, None) in loader.ontology


def test_valid_policy_conforms_and_is_read(loader: KnowledgeLoader) -> None:
    g, _ = _policy(Literal("300", datatype=XSD.decimal))
    assert shacl.validate(g, loader.shapes, ontology=loader.ontology) == []
    store = RdflibStore()
    store.add(KNOWLEDGE_GRAPH, g)
    policy = escalation.policy_from_graph(store)
    assert [(lv.name, lv.after_seconds, lv.action) for lv in policy.levels] == [
        ("page", 300.0, "page")
    ]


@pytest.mark.parametrize(
    "after", [Literal("-5", datatype=XSD.decimal), Literal("soon"), Literal(True)]
)
def test_bad_after_seconds_violates_the_shape(loader: KnowledgeLoader, after: Literal) -> None:
    g, level = _policy(after)
    violations = shacl.validate(g, loader.shapes, ontology=loader.ontology)
    assert violations
    assert all(v.focus == shacl.show_term(level) for v in violations)
    assert all("afterSeconds" in v.message for v in violations)


def test_policy_without_levels_violates_the_shape(loader: KnowledgeLoader) -> None:
    g = rdflib.Graph()
    g.add((node_iri("escalation", "empty"), RDF.type, SHK.EscalationPolicy))
    [v] = shacl.validate(g, loader.shapes, ontology=loader.ontology)
    assert "shk:hasLevel" in v.message


def test_duplicate_level_names_refused() -> None:
    with pytest.raises(ConfigError, match="unique"):
        escalation.EscalationPolicy.of([("page", 0, "page"), ("page", 10, "page")])


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("http://127.0.0.1:8080/health", True),
        ("tcp://db.internal:5432", True),
        ("tcp://db.internal", False),
        ("tcp://db/x:5432", False),
        ("ftp://x:21", False),
    ],
)
def test_health_endpoint_allows_http_and_tcp_host_port(
    loader: KnowledgeLoader, endpoint: str, ok: bool
) -> None:
    g = rdflib.Graph()
    n = node_iri("database", "orders")
    g.add((n, RDF.type, SHK.Database))
    g.add((n, rdflib.RDFS.label, Literal("orders")))
    g.add((n, SHK.healthEndpoint, Literal(endpoint, datatype=XSD.anyURI)))
    violations = shacl.validate(g, loader.shapes, ontology=loader.ontology)
    assert (violations == []) is ok
