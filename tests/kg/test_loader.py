"""Files → named graphs, with validation before the swap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rdflib import RDF, RDFS, Literal

from selfheal_kg.errors import SchemaError, ShaclError, TurtleSyntaxError
from selfheal_kg.kg import topology
from selfheal_kg.kg.loader import KnowledgeLoader, validate_paths
from selfheal_kg.kg.namespaces import (
    KNOWLEDGE_GRAPH,
    ONTOLOGY_GRAPH,
    SHAPES_GRAPH,
    SHK,
    TOPOLOGY_GRAPH,
    node_iri,
)
from selfheal_kg.kg.store import KnowledgeStore, SelectResult
from selfheal_kg.paths import shipped


@pytest.fixture
def loader(
    store: KnowledgeStore, ontology_dir: Path, playbooks_dir: Path, topology_file: Path
) -> KnowledgeLoader:
    loader = KnowledgeLoader(store, ontology_dir)
    loader.load_all([topology_file], playbooks_dir)
    return loader


def test_load_all_fills_every_graph(store: KnowledgeStore, loader: KnowledgeLoader) -> None:
    for graph in (ONTOLOGY_GRAPH, SHAPES_GRAPH, TOPOLOGY_GRAPH, KNOWLEDGE_GRAPH):
        assert store.count(graph) > 0, graph


def test_shipped_playbooks_and_patterns_appear_in_sparql(
    store: KnowledgeStore, loader: KnowledgeLoader, shipped_playbook_ids: list[str]
) -> None:
    q = """PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>
    SELECT ?pb ?pattern ?action ?deadline WHERE {
      ?p a shk:Playbook ; shk:playbookId ?pb ; shk:handles/shk:patternId ?pattern ;
         shk:hasStep ?s ; shk:hasSuccessCriterion ?c .
      ?s shk:order 0 ; shk:action ?action . ?c shk:deadlineSeconds ?deadline
    } ORDER BY ?pb"""
    result = store.query(q)
    assert isinstance(result, SelectResult)
    rows = {r["pb"]: r for r in result.dicts()}
    assert sorted(rows) == shipped_playbook_ids
    restart = rows["restart-service"]
    assert restart["pattern"] == "ServiceDown"
    assert restart["action"] == "restart"
    assert float(restart["deadline"]) == 30  # type: ignore[arg-type]


def test_bad_topology_refused_and_old_graph_stays(
    store: KnowledgeStore, loader: KnowledgeLoader, tmp_path: Path, bad_topology: str
) -> None:
    before = set(store.triples(TOPOLOGY_GRAPH))
    bad = tmp_path / "bad.ttl"
    bad.write_text(bad_topology, encoding="utf-8")
    with pytest.raises(ShaclError) as info:
        loader.reload_topology([bad])
    err = info.value
    assert err.file == str(bad)
    [violation] = err.violations
    assert violation.focus == "id:service/frontend"
    assert violation.path == "shk:criticality"
    assert violation.value == "extreme"
    assert "low, medium, high, critical" in violation.message
    assert set(store.triples(TOPOLOGY_GRAPH)) == before


def test_turtle_syntax_error_keeps_old_graph(
    store: KnowledgeStore, loader: KnowledgeLoader, tmp_path: Path
) -> None:
    before = store.count(TOPOLOGY_GRAPH)
    bad = tmp_path / "broken.ttl"
    bad.write_text("@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .\nshk:a shk:b\n")
    with pytest.raises(TurtleSyntaxError) as info:
        loader.reload_topology([bad])
    assert info.value.line is not None
    assert store.count(TOPOLOGY_GRAPH) == before


def _copy_playbooks(tmp_path: Path) -> Path:
    target = tmp_path / "playbooks"
    shutil.copytree(shipped("playbooks"), target)
    return target


def test_bad_playbook_refused_and_old_knowledge_stays(
    store: KnowledgeStore, loader: KnowledgeLoader, tmp_path: Path
) -> None:
    before = set(store.triples(KNOWLEDGE_GRAPH))
    pdir = _copy_playbooks(tmp_path)
    path = pdir / "restart-service.yaml"
    path.write_text(path.read_text().replace("risk: low", "risk: extreme"))
    with pytest.raises(SchemaError) as info:
        loader.reload_playbooks(pdir)
    assert info.value.item == "restart-service"
    assert "$.risk" in str(info.value)
    assert set(store.triples(KNOWLEDGE_GRAPH)) == before


def test_playbook_for_unknown_pattern_fails_shacl(
    store: KnowledgeStore, loader: KnowledgeLoader, tmp_path: Path
) -> None:
    before = store.count(KNOWLEDGE_GRAPH)
    pdir = _copy_playbooks(tmp_path)
    path = pdir / "restart-service.yaml"
    path.write_text(path.read_text().replace("[ServiceDown]", "[NoSuchPattern]"))
    with pytest.raises(ShaclError) as info:
        loader.reload_playbooks(pdir)
    assert info.value.file == str(path)
    assert info.value.violations[0].path == "shk:handles"
    assert store.count(KNOWLEDGE_GRAPH) == before


def test_reload_rules_swaps_knowledge_and_refuses_bad_rules(
    store: KnowledgeStore, loader: KnowledgeLoader
) -> None:
    rule = node_iri("rule", "r1")
    good = [
        (rule, RDF.type, SHK.Rule),
        (rule, SHK.ruleId, Literal("r1")),
        (rule, SHK.ruleSet, Literal("default")),
        (rule, SHK.concludes, node_iri("pattern", "ServiceDown")),
        (rule, SHK.actionName, Literal("diagnose")),
    ]
    good.append((rule, RDFS.label, Literal("r1")))
    loader.reload_rules(good)
    assert store.query(f"ASK {{ <{rule}> a <{SHK.Rule}> }}") is True
    with pytest.raises(ShaclError):
        loader.reload_rules([*good[:1], (rule, SHK.ruleId, Literal("r1"))])  # no label, no set
    assert store.query(f"ASK {{ <{rule}> <{SHK.actionName}> 'diagnose' }}") is True


def test_discovered_edges_survive_reload_of_knowledge(
    store: KnowledgeStore, loader: KnowledgeLoader, playbooks_dir: Path
) -> None:
    topology.add_discovered_edges(store, [("checkout", "payment")], 1.7e9)
    loader.reload_playbooks(playbooks_dir)
    assert ("checkout", "payment") in topology.edges(store)


def test_validate_paths_ok_for_shipped_files(ontology_dir: Path) -> None:
    paths = [ontology_dir, shipped("playbooks"), shipped("rules")]
    problems = [m for m in validate_paths(paths, ontology_dir) if not m.startswith("note:")]
    assert problems == []


def test_validate_paths_reports_each_problem(
    ontology_dir: Path, tmp_path: Path, bad_topology: str
) -> None:
    bad = tmp_path / "bad.ttl"
    bad.write_text(bad_topology, encoding="utf-8")
    pb = tmp_path / "pb.yaml"
    pb.write_text("id: broken\nname: Broken\n", encoding="utf-8")
    problems = validate_paths([bad, pb], ontology_dir)
    assert any(str(bad) in m and "shk:criticality" in m for m in problems)
    assert any(str(pb) in m and "[broken]" in m and "'handles'" in m for m in problems)
