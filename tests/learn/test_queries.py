"""Every shipped outcome query runs on a store filled by IncidentBook and gives the hand count."""

from __future__ import annotations

from typing import Any

import pytest

from selfheal_kg.kg import sparql
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.stats import mark_recurrences
from selfheal_kg.paths import shipped

QUERIES = shipped("ontology") / "queries"


def run(store: KnowledgeStore, name: str) -> list[dict[str, Any]]:
    return store.query((QUERIES / name).read_text(encoding="utf-8")).dicts()  # type: ignore[union-attr]


@pytest.fixture
def filled(store: KnowledgeStore, history: Any) -> dict[str, str]:
    """Three ServiceDown trials on checkout (ok, ok-but-recurs, failed with 2 steps) + latency."""
    ids = {"a": history.run().id, "b": history.run().id}
    ids["c"] = history.run(success=False, steps=2, gap=600.0).id
    ids["d"] = history.run(pattern="HighLatency", playbook="scale-out").id
    assert mark_recurrences(store) == [ids["b"]]
    return ids


def test_every_query_has_a_comment_header() -> None:
    files = sorted(QUERIES.glob("*.rq"))
    assert len(files) >= 5
    for f in files:
        assert f.read_text(encoding="utf-8").startswith("# "), f


def test_outcome_times(store: KnowledgeStore, filled: dict[str, str]) -> None:
    rows = {r["id"]: r for r in run(store, "outcome-times.rq")}
    assert set(rows) == set(filled.values())
    ok = rows[filled["a"]]
    assert [float(ok[k]) for k in ("timeToDetect", "timeToDiagnose", "timeToRepair",
                                   "timeToRecover")] == [10.0, 10.0, 14.0, 30.0]
    failed = rows[filled["c"]]
    assert failed["timeToRecover"] is None and float(failed["timeToRepair"]) == 14.0


def test_mean_times_by_pattern(store: KnowledgeStore, filled: dict[str, str]) -> None:
    rows = {r["pattern"]: r for r in run(store, "mean-times-by-pattern.rq")}
    sd = rows["ServiceDown"]
    assert int(sd["incidents"]) == 3
    assert float(sd["mttd"]) == pytest.approx(10.0)
    assert float(sd["mttr"]) == pytest.approx(30.0)  # the failed one has no recovery


def test_playbook_results(store: KnowledgeStore, filled: dict[str, str]) -> None:
    rows = {r["id"]: r for r in run(store, "playbook-results.rq")}
    assert rows[filled["a"]]["success"] is True and rows[filled["a"]]["recurred"] is False
    assert rows[filled["b"]]["recurred"] is True
    assert rows[filled["c"]]["success"] is False and int(rows[filled["c"]]["steps"]) == 2
    assert rows[filled["d"]]["playbook"] == "scale-out"


def test_success_rates_count_recurrence_as_failure(
    store: KnowledgeStore, filled: dict[str, str]
) -> None:
    rows = {(r["playbook"], r["pattern"]): r for r in run(store, "success-rates.rq")}
    sd = rows[("restart-service", "ServiceDown")]
    assert (int(sd["trials"]), int(sd["successes"]), int(sd["failures"])) == (3, 1, 2)
    assert int(rows[("scale-out", "HighLatency")]["successes"]) == 1


def test_recurred_resolutions(store: KnowledgeStore, filled: dict[str, str]) -> None:
    rows = run(store, "recurred-resolutions.rq")
    assert [(r["id"], r["laterId"], r["node"]) for r in rows] == [
        (filled["b"], filled["c"], "checkout")
    ]


def test_queries_are_read_only() -> None:
    for f in QUERIES.glob("*.rq"):
        sparql.check_read_only(f.read_text(encoding="utf-8"))
