from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from selfheal_kg.errors import ConfigError
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.rank import (
    ALPHA,
    BETA,
    MODES,
    Anomaly,
    metric_family,
    personalized_walk,
    rank,
    walk_matrix,
)


def anomalies(spec: dict[str, tuple[float, float]]) -> dict[str, Anomaly]:
    return {n: Anomaly(n, s, o, (f"{n}/latency@{o}",), ("latency",))
            for n, (s, o) in spec.items()}


CHAIN = [("frontend", "checkout"), ("checkout", "payment"), ("frontend", "catalog"),
         ("catalog", "search")]


def test_leaf_two_levels_below_the_symptom_ranks_first_with_path() -> None:
    snap = TopologySnapshot.from_edges(CHAIN)
    # the callers look worse than the leaf and even start at the same time
    an = anomalies({"frontend": (1.0, 10), "checkout": (0.9, 10), "payment": (0.6, 10)})
    causes = rank(snap, an, target="frontend")
    assert causes[0].node == "payment"
    assert causes[0].path == ("frontend", "checkout", "payment")
    assert causes[0].rank == 1 and causes[0].evidence == ("payment/latency@10",)
    assert [c.node for c in causes].index("frontend") > 0
    assert set(causes[0].components) == {"graph", "onset", "evidence"}


def test_path_without_target_starts_at_most_upstream_symptom() -> None:
    snap = TopologySnapshot.from_edges(CHAIN)
    an = anomalies({"frontend": (1.0, 10), "checkout": (0.9, 10), "payment": (0.6, 10)})
    assert rank(snap, an)[0].path == ("frontend", "checkout", "payment")


def test_two_independent_faults_are_both_in_top_two() -> None:
    snap = TopologySnapshot.from_edges([*CHAIN, ("admin", "db"), ("admin", "auth")])
    an = anomalies({"frontend": (1.0, 5), "checkout": (0.8, 4), "payment": (0.7, 3),
                    "admin": (0.9, 6), "auth": (0.6, 5)})
    top2 = {c.node for c in rank(snap, an, observed=set(an) | {"db", "catalog"})[:2]}
    assert top2 == {"payment", "auth"}


def test_partial_topology_nodes_only_in_anomalies_are_ranked() -> None:
    snap = TopologySnapshot.from_edges([("a", "b")])
    causes = rank(snap, anomalies({"ghost": (0.9, 1), "a": (0.5, 2)}))
    assert {c.node for c in causes} == {"ghost", "a"}
    ghost = next(c for c in causes if c.node == "ghost")
    assert ghost.path == ("ghost",)


def test_uninstrumented_database_behind_anomalous_callers_is_the_root() -> None:
    snap = TopologySnapshot.from_edges([("web", "orders"), ("web", "users"),
                                        ("orders", "db"), ("users", "db")],
                                       kinds={"db": "database"})
    an = anomalies({"web": (1.0, 3), "orders": (0.9, 2), "users": (0.8, 2)})
    causes = rank(snap, an, target="web", observed={"web", "orders", "users"})
    assert causes[0].node == "db"
    assert "no metrics" in causes[0].explanation
    assert set(causes[0].evidence) == {"orders/latency@2", "users/latency@2"}
    assert causes[0].path in {("web", "orders", "db"), ("web", "users", "db")}


def test_observed_healthy_dependency_is_not_inferred() -> None:
    snap = TopologySnapshot.from_edges([("web", "db")])
    an = anomalies({"web": (1.0, 3)})
    assert [c.node for c in rank(snap, an, observed={"web", "db"})] == ["web"]
    assert [c.node for c in rank(snap, an)] == ["web"]  # inference off without `observed`
    inferred = rank(snap, an, observed={"web"})
    assert [c.node for c in inferred] == ["db", "web"]
    assert inferred[0].components["evidence"] == 0.5  # one caller: discounted by 1/2


def test_target_restricts_to_its_dependencies() -> None:
    snap = TopologySnapshot.from_edges([*CHAIN, ("other", "x")])
    an = anomalies({"frontend": (0.5, 3), "search": (0.5, 2), "x": (1.0, 1)})
    assert {c.node for c in rank(snap, an, target="frontend")} == {"search", "frontend"}


def test_earlier_onset_and_hints_break_ties() -> None:
    snap = TopologySnapshot.from_edges([])
    an = anomalies({"a": (0.5, 10), "b": (0.5, 5)})
    assert rank(snap, an)[0].node == "b"
    hinted = rank(snap, an, pattern_hints={"a": 1.0})
    assert hinted[0].node == "a" and hinted[0].components["hint"] == 1.0


def test_walk_formula_is_the_documented_closed_form() -> None:
    # 0 -> 1 -> 2 and 0 -> 2
    adj = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=float))
    s = np.array([1.0, 0.5, 0.25])
    p = s / s.sum()
    expected_p = np.array([
        [BETA, (1 - BETA) * 0.5 / 0.75, (1 - BETA) * 0.25 / 0.75],
        [0, BETA, 1 - BETA],
        [0, 0, 1],
    ])
    assert np.allclose(walk_matrix(adj, s).toarray(), expected_p)
    closed = (1 - ALPHA) * p @ np.linalg.inv(np.eye(3) - ALPHA * expected_p)
    assert np.allclose(personalized_walk(adj, s, p), closed, atol=1e-9)
    assert (ALPHA, BETA) == (0.85, 0.15)


def test_no_anomaly_gives_no_cause() -> None:
    assert rank(TopologySnapshot.from_edges([("a", "b")]), {}) == []


def test_hidden_dependency_is_blamed_only_through_outgoing_call_evidence() -> None:
    # A leaf slow in its own handler does not implicate the database it calls; a leaf whose
    # database calls are slow does (the database has no metrics of its own).
    snap = TopologySnapshot.from_edges(
        [("frontend", "checkout"), ("checkout", "inventory"), ("inventory", "inventory-db")]
    )
    client = ("http.server.duration.mean", "http.client.duration.mean")
    base = {n: Anomaly(n, 1.0, 100.0, (n,), client) for n in ("frontend", "checkout")}
    observed = {"frontend", "checkout", "inventory"}
    slow_handler = {**base, "inventory": Anomaly("inventory", 1.0, 100.0, ("i",),
                                                 ("http.server.duration.mean",))}
    assert rank(snap, slow_handler, target="checkout", observed=observed)[0].node == "inventory"
    slow_db = {**base, "inventory": Anomaly("inventory", 1.0, 100.0, ("i",),
                                            ("db.client.operation.duration.mean",))}
    assert rank(snap, slow_db, target="checkout", observed=observed)[0].node == "inventory-db"


def kinded(spec: dict[str, tuple[float, str]]) -> dict[str, Anomaly]:
    return {n: Anomaly(n, s, 10.0, (f"{n}/{k}",), (k,)) for n, (s, k) in spec.items()}


@pytest.mark.parametrize("mode", MODES)
def test_both_modes_rank_the_leaf_below_stronger_symptoms_first(mode: str) -> None:
    snap = TopologySnapshot.from_edges(CHAIN)
    an = anomalies({"frontend": (1.0, 10), "checkout": (0.9, 10), "payment": (0.6, 10)})
    causes = rank(snap, an, target="frontend", mode=mode)
    assert causes[0].node == "payment"
    assert causes[0].path == ("frontend", "checkout", "payment")


def test_traversal_puts_every_unexplained_node_first() -> None:
    snap = TopologySnapshot.from_edges([*CHAIN, ("admin", "db"), ("admin", "auth")])
    an = anomalies({"frontend": (1.0, 5), "checkout": (0.8, 4), "payment": (0.3, 3),
                    "admin": (0.9, 6), "auth": (0.6, 5)})
    causes = rank(snap, an, mode="traversal")
    assert [c.node for c in causes[:2]] == ["auth", "payment"]  # stronger first
    assert causes[0].components["unexplained"] == 1.0
    assert {c.node: c.components["unexplained"] for c in causes}["frontend"] == 0.0
    assert set(causes[0].components) == {"unexplained", "onset", "evidence"}


def test_traversal_explains_only_within_a_metric_family() -> None:
    # search's errors are not explained by its storage being slow; its slowness would be
    snap = TopologySnapshot.from_edges([("web", "search"), ("search", "s3")])
    errors = kinded({"web": (0.9, "availability.Average"),
                     "search": (0.6, "availability.Average"), "s3": (0.3, "latency.Average")})
    causes = {c.node: c for c in rank(snap, errors, target="web", mode="traversal")}
    assert causes["search"].rank == 1 and causes["search"].components["unexplained"] == 1.0
    assert causes["web"].components["unexplained"] == 0.0
    slow = kinded({"web": (0.9, "latency.Average"), "search": (0.6, "latency.p99"),
                   "s3": (0.3, "latency.Average")})
    causes = {c.node: c for c in rank(snap, slow, target="web", mode="traversal")}
    assert causes["s3"].rank == 1 and causes["search"].components["unexplained"] == 0.0


def test_traversal_infers_an_uninstrumented_database() -> None:
    snap = TopologySnapshot.from_edges([("web", "orders"), ("web", "users"),
                                        ("orders", "db"), ("users", "db")])
    an = anomalies({"web": (1.0, 3), "orders": (0.9, 2), "users": (0.8, 2)})
    causes = rank(snap, an, target="web", observed={"web", "orders", "users"},
                  mode="traversal")
    assert causes[0].node == "db" and "no metrics" in causes[0].explanation


def test_traversal_hint_breaks_a_tie_among_unexplained() -> None:
    an = anomalies({"a": (0.5, 10), "b": (0.5, 10)})
    causes = rank(TopologySnapshot.from_edges([]), an, pattern_hints={"b": 1.0},
                  mode="traversal")
    assert causes[0].node == "b" and causes[0].components["hint"] == 1.0


def test_metric_family_groups_statistics() -> None:
    assert metric_family("latency.p99") == metric_family("http.server.duration.mean")
    assert metric_family("availability.Average") == "availability"
    assert metric_family("http.server.errors") == "errors"
    assert metric_family("requests.Sum") == "requests"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown ranking mode 'bogus'"):
        rank(TopologySnapshot.from_edges([]), anomalies({"a": (0.5, 1)}), mode="bogus")
