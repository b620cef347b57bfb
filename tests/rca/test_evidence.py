from __future__ import annotations

import networkx as nx

from selfheal_kg.model import Signal
from selfheal_kg.rca.evidence import anomalies_from, component, near, observed_nodes


def sig(node: str, metric: str, score: float, onset: float) -> Signal:
    return Signal(
        f"{node}|{metric}",
        f"{node}|{metric}",
        node,
        metric,
        "robust_z",
        score,
        "up",
        onset,
        onset,
        1.0,
        0.0,
    )


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from([("gw", "co"), ("co", "pay"), ("co", "inv"), ("inv", "db"), ("x", "y")])
    return g


def test_signals_merge_per_node_and_down_nodes_score_one() -> None:
    got = anomalies_from([sig("co", "a", 0.5, 10.0), sig("co", "b", 0.9, 12.0)], {"inv": 8.0})
    assert got["co"].score == 0.9 and got["co"].onset == 10.0
    assert got["co"].kinds == ("a", "b") and got["co"].onsets == (10.0, 12.0)
    assert got["inv"].score == 1.0 and got["inv"].evidence == ("health:inv",)
    assert got["inv"].onsets == (8.0,)


def test_component_follows_anomalous_nodes_both_ways() -> None:
    g = graph()
    # pay's traffic vanished because inv failed: they meet through their common caller co
    assert component(g, {"pay"}, {"co", "inv", "gw"}) == {"pay", "co", "inv", "gw"}
    assert component(g, {"pay"}, {"inv"}) == {"pay"}
    assert near(g, "inv") == {"db", "co", "gw"}


def test_a_down_nodes_dependencies_are_not_inferred() -> None:
    assert observed_nodes({"gw", "co"}, {"inv"}, graph()) == {"gw", "co", "db"}


def test_only_outgoing_call_evidence_leaves_a_callee_open_to_inference() -> None:
    from selfheal_kg.rca.rank import Anomaly

    g = graph()
    leaking = {"inv": Anomaly("inv", 1.0, 1.0, ("m",), ("process.memory.utilization",))}
    assert "db" in observed_nodes({"inv"}, (), g, leaking)
    slow_db = {"inv": Anomaly("inv", 1.0, 1.0, ("d",), ("db.client.operation.duration.mean",))}
    assert "db" not in observed_nodes({"inv"}, (), g, slow_db)


def test_diagnosed_nodes_carry_their_patterns_symptoms() -> None:
    from selfheal_kg.rca.evidence import with_diagnoses
    from selfheal_kg.rca.rank import Anomaly

    patterns = {
        "Overload": ("capacity", (("http.server.request.rate", "up"),
                                  ("http.server.duration.mean", "up"))),
        "HighLatency": ("saturation", (("http.server.duration.mean", "up"),)),
    }
    an = {"co": Anomaly("co", 1.0, 1.0, ("r",), ("http.server.request.rate",))}
    got = with_diagnoses(an, [("co", "Overload"), ("co", "HighLatency"), ("co", "Unknown"),
                              ("gone", "Overload")], patterns)
    assert got["co"].diagnosed == ("http.server.request.rate", "http.server.duration.mean")
    assert set(got) == {"co"} and an["co"].diagnosed == ()


def test_pool_metrics_do_not_leave_the_database_open_to_inference() -> None:
    from selfheal_kg.rca.rank import Anomaly

    pool = {"inv": Anomaly("inv", 1.0, 1.0, ("p",), ("db.client.connection.wait_time.mean",))}
    assert "db" in observed_nodes({"inv"}, (), graph(), pool)
