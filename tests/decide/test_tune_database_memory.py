"""The shipped tune-database-memory playbook: chosen for DatabaseMemoryPressure, only for it."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from rdflib import Graph

from selfheal_kg.decide.choose import choose
from selfheal_kg.decide.playbook import Playbook, load_playbook, load_playbooks
from selfheal_kg.errors import SchemaError
from selfheal_kg.kg.namespaces import SHK
from selfheal_kg.paths import shipped

PLAYBOOK = "tune-database-memory"


@pytest.fixture(scope="module")
def playbooks() -> list[Playbook]:
    return list(load_playbooks(shipped("playbooks")).values())


def shop() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from([("frontend", "checkout"), ("checkout", "inventory"),
                      ("inventory", "inventory-db")])
    return g


def all_actions(playbooks: list[Playbook]) -> set[str]:
    return {st.action for pb in playbooks for st in pb.steps}


def test_chosen_for_memory_pressure_on_a_database(playbooks: list[Playbook]) -> None:
    d = choose("i1", "DatabaseMemoryPressure", "inventory-db", "Database", playbooks, shop(),
               {}, all_actions(playbooks))
    assert d.chosen is not None and d.chosen.playbook == PLAYBOOK
    assert not d.needs_approval


def test_not_applicable_to_a_service(playbooks: list[Playbook]) -> None:
    d = choose("i1", "DatabaseMemoryPressure", "inventory", "Service", playbooks, shop(), {},
               all_actions(playbooks))
    assert d.chosen is None
    assert [c.playbook for c in d.candidates if c.playbook == PLAYBOOK]
    assert not any(c.applicable for c in d.candidates if c.playbook == PLAYBOOK)


def test_never_a_candidate_for_another_pattern(playbooks: list[Playbook]) -> None:
    graph = Graph().parse(shipped("ontology") / "patterns.ttl")
    patterns = {str(o) for o in graph.objects(None, SHK.patternId)}
    assert {"SlowQuery", "DatabaseMemoryPressure"} <= patterns
    for pattern in patterns - {"DatabaseMemoryPressure"}:
        d = choose("i1", pattern, "inventory-db", "Database", playbooks, shop(), {},
                   all_actions(playbooks))
        assert PLAYBOOK not in {c.playbook for c in d.candidates}, pattern


def test_step_is_one_bounded_work_mem_change(playbooks: list[Playbook]) -> None:
    (pb,) = [p for p in playbooks if p.id == PLAYBOOK]
    assert pb.handles == ("DatabaseMemoryPressure",)
    assert pb.target_types == ("Database",)
    assert [(s.action, dict(s.params)) for s in pb.steps] == [
        ("sql_setting", {"name": "work_mem", "value": "64MB"})]
    assert [c.metric for c in pb.success] == ["db.temp.bytes.rate"]


@pytest.mark.parametrize("value", ["4GB", "2MB", "513MB", "64MB; RESET ALL"])
def test_parameter_schema_bounds_the_value(tmp_path: Path, value: str) -> None:
    text = (shipped("playbooks") / f"{PLAYBOOK}.yaml").read_text(encoding="utf-8")
    bad = text.replace("value: 64MB}", f"value: '{value}'}}")
    assert bad != text
    (tmp_path / "pb.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(SchemaError, match="does not match"):
        load_playbook(tmp_path / "pb.yaml")
