"""Draft patterns from unmatched resolved incidents: cluster, validate, promote, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rdflib import Graph

from selfheal_kg.errors import NotFound, ShaclError
from selfheal_kg.kg.loader import validate_paths
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.patterns import (
    export_pattern,
    jaccard,
    list_patterns,
    promote,
    propose_drafts,
    record_resolution,
    validate_pattern,
)
from selfheal_kg.learn.stats import Symptom
from selfheal_kg.paths import shipped

LEAK = (("http.server.error.ratio", "up"), ("process.memory.usage", "up"),
        ("http.server.duration.mean", "up"))
LEAK_GC = (*LEAK, ("process.gc.pause", "up"))  # Jaccard with LEAK: 3/4 = 0.75
DISK = (("disk.free", "down"),)


def two_similar(history: Any, store: KnowledgeStore) -> list[str]:
    """One fixed by a playbook, one fixed by a human; plus incidents that must not count."""
    a = history.run(pattern="Unclassified", symptoms=LEAK)
    b = history.run(pattern="Unclassified", playbook=None, symptoms=LEAK_GC)
    record_resolution(store, b.id, root_cause_type="memory-leak", playbook="restart-service",
                      note="heap grew until OOM", by="alice", at=history.clock.now())
    history.run(pattern="Unclassified", playbook=None, symptoms=DISK)  # never resolved
    history.run(symptoms=LEAK)  # ServiceDown is a known pattern
    history.run(pattern="Unclassified", success=False, symptoms=LEAK)  # the playbook failed
    return [a.id, b.id]


def test_jaccard() -> None:
    a = frozenset(Symptom(m, d) for m, d in LEAK)
    b = frozenset(Symptom(m, d) for m, d in LEAK_GC)
    assert jaccard(a, b) == 0.75
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_two_similar_incidents_give_one_draft(store: KnowledgeStore, history: Any) -> None:
    ids = two_similar(history, store)
    drafts = propose_drafts(store, history.clock.now())
    assert len(drafts) == 1
    d = drafts[0]
    assert sorted(d.incidents) == sorted(ids)
    assert d.root_cause_type == "memory-leak" and d.playbook == "restart-service"
    assert {s.metric for s in d.symptoms} == {m for m, _ in LEAK_GC}
    listed = list_patterns(store, status="draft")
    assert [(p["id"], p["support"]) for p in listed] == [(d.id, 2)]
    assert {p["id"] for p in list_patterns(store, status="active")} >= {"ServiceDown"}
    assert propose_drafts(store, history.clock.now()) == []  # nothing new: no duplicate
    assert validate_pattern(store, d.id) == []


def test_promote_and_export_is_accepted_by_the_validator(
    store: KnowledgeStore, history: Any, tmp_path: Path
) -> None:
    two_similar(history, store)
    (d,) = propose_drafts(store, history.clock.now())
    promoted = promote(store, d.id, "bob", history.clock.now())
    assert promoted.status == "active"
    (row,) = [p for p in list_patterns(store) if p["id"] == d.id]
    assert row["status"] == "active"
    approved = store.query(
        "PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>\n"
        f"SELECT ?by WHERE {{ <{d.iri}> shk:approvedBy ?by ; shk:approvedAt ?at }}"
    ).dicts()  # type: ignore[union-attr]
    assert approved == [{"by": "bob"}]

    text = export_pattern(store, d.id)
    alone = tmp_path / "alone" / "patterns.ttl"
    alone.parent.mkdir()
    alone.write_text(text, encoding="utf-8")
    assert validate_paths([alone], shipped("ontology")) == []
    g = Graph().parse(data=text, format="turtle")
    assert len(g) > 10
    # appended to the shipped patterns, with the shipped playbooks: still valid
    merged = tmp_path / "merged" / "patterns.ttl"
    merged.parent.mkdir()
    shipped_text = (shipped("ontology") / "patterns.ttl").read_text(encoding="utf-8")
    merged.write_text(shipped_text + "\n" + text, encoding="utf-8")
    assert validate_paths([merged, shipped("playbooks")], shipped("ontology")) == []


def test_support_grows_after_promotion(store: KnowledgeStore, history: Any) -> None:
    two_similar(history, store)
    (d,) = propose_drafts(store, history.clock.now())
    promote(store, d.id, "bob", history.clock.now())
    history.run(pattern="Unclassified", symptoms=LEAK)
    (again,) = propose_drafts(store, history.clock.now())
    assert again.id == d.id and len(again.incidents) == 3 and again.status == "active"
    (row,) = [p for p in list_patterns(store) if p["id"] == d.id]
    assert row["support"] == 3 and row["status"] == "active"


def test_dissimilar_incidents_give_separate_drafts(store: KnowledgeStore, history: Any) -> None:
    history.run(pattern="Unclassified", symptoms=LEAK)
    history.run(pattern="Unclassified", symptoms=DISK)
    assert len(propose_drafts(store, history.clock.now())) == 2


def test_invalid_draft_is_not_promoted(store: KnowledgeStore, history: Any) -> None:
    history.run(pattern="Unclassified", symptoms=(("cpu", "sideways"),))
    (d,) = propose_drafts(store, history.clock.now())
    problems = validate_pattern(store, d.id)
    assert problems and "direction" in str(problems[0])
    with pytest.raises(ShaclError, match="direction"):
        promote(store, d.id, "bob", history.clock.now())
    assert [p["status"] for p in list_patterns(store) if p["id"] == d.id] == ["draft"]


def test_unknown_ids(store: KnowledgeStore) -> None:
    with pytest.raises(NotFound):
        promote(store, "Nope", "bob", 0.0)
    with pytest.raises(NotFound):
        export_pattern(store, "Nope")
    with pytest.raises(NotFound):
        record_resolution(store, "no-such", root_cause_type="x", playbook=None, note="",
                          by="a", at=0.0)
