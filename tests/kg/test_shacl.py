"""SHACL validation read back into Violation values."""

from __future__ import annotations

from pathlib import Path

import rdflib
from rdflib import RDF, RDFS, Literal

from selfheal_kg.kg import shacl
from selfheal_kg.kg.namespaces import SHK, node_iri


def _graphs(ontology_dir: Path) -> tuple[rdflib.Graph, rdflib.Graph]:
    onto = rdflib.Graph().parse(ontology_dir / "selfheal.ttl")
    shapes = rdflib.Graph().parse(ontology_dir / "shapes.ttl")
    return onto, shapes


def test_shipped_patterns_conform(ontology_dir: Path) -> None:
    onto, shapes = _graphs(ontology_dir)
    data = rdflib.Graph().parse(ontology_dir / "patterns.ttl")
    assert shacl.validate(data, shapes, ontology=onto) == []


def test_violation_names_focus_path_and_reason(ontology_dir: Path) -> None:
    onto, shapes = _graphs(ontology_dir)
    svc = node_iri("service", "x")
    data = rdflib.Graph()
    data.add((svc, RDF.type, SHK.Service))
    data.add((svc, RDFS.label, Literal("x")))
    # serviceName missing; criticality outside the enumeration
    data.add((svc, SHK.criticality, Literal("urgent")))
    violations = shacl.validate(data, shapes, ontology=onto)
    by_path = {v.path: v for v in violations}
    assert set(by_path) == {"shk:serviceName", "shk:criticality"}
    crit = by_path["shk:criticality"]
    assert crit.focus == "id:service/x"
    assert crit.value == "urgent"
    assert "low, medium, high, critical" in crit.message
    assert crit.severity == "Violation"
    assert "exactly one shk:serviceName" in by_path["shk:serviceName"].message


def test_subclass_inference_needs_the_ontology(ontology_dir: Path) -> None:
    """The Node shape reaches a Database only through rdfs:subClassOf from the ontology."""
    onto, shapes = _graphs(ontology_dir)
    svc, db = node_iri("service", "s"), node_iri("database", "d")
    data = rdflib.Graph()
    for t in [
        (svc, RDF.type, SHK.Service),
        (svc, RDFS.label, Literal("s")),
        (svc, SHK.serviceName, Literal("s")),
        (svc, SHK.calls, db),
        (db, RDF.type, SHK.Database),
        (db, RDFS.label, Literal("d")),
    ]:
        data.add(t)
    assert shacl.validate(data, shapes, ontology=onto) == []
    data.add((db, SHK.criticality, Literal("urgent")))
    assert shacl.validate(data, shapes) == []  # without the ontology the shape misses it
    with_onto = shacl.validate(data, shapes, ontology=onto)
    assert [(v.focus, v.path) for v in with_onto] == [("id:database/d", "shk:criticality")]


def test_focus_nodes_limit_validation(ontology_dir: Path) -> None:
    onto, shapes = _graphs(ontology_dir)
    good, bad = node_iri("service", "good"), node_iri("service", "bad")
    data = rdflib.Graph()
    for node in (good, bad):
        data.add((node, RDF.type, SHK.Service))
        data.add((node, RDFS.label, Literal("n")))
    data.add((good, SHK.serviceName, Literal("good")))
    assert shacl.validate(data, shapes, [good], ontology=onto) == []
    assert len(shacl.validate(data, shapes, [bad], ontology=onto)) == 1


def test_shapes_graph_is_not_modified(ontology_dir: Path) -> None:
    onto, shapes = _graphs(ontology_dir)
    before = len(shapes)
    shacl.validate(rdflib.Graph(), shapes, ontology=onto)
    assert len(shapes) == before
