"""The traversal ranking on the demo shop's failure modes, with the signals seen live."""

from __future__ import annotations

from selfheal_kg.rca.anomaly import Anomaly
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.rank import rank
from selfheal_kg.rca.traversal import explains

SHOP = TopologySnapshot.from_edges([
    ("gateway", "frontend"), ("frontend", "checkout"), ("checkout", "inventory"),
    ("checkout", "payment"), ("inventory", "inventory-db"),
])
OBSERVED = {"gateway", "frontend", "checkout", "inventory", "payment"}
SERVER_LATENCY = ("http.server.duration.mean", "http.server.duration.p95")
CLIENT_LATENCY = ("http.client.duration.mean",)
OVERLOAD = ("http.server.request.rate", "http.server.duration.mean")
SLOW_QUERY = ("db.client.operation.duration.mean", "http.server.duration.mean")
HIGH_LATENCY = ("http.server.duration.mean",)


def slow(node: str, onset: float = 10.0, kinds: tuple[str, ...] = SERVER_LATENCY,
         diagnosed: tuple[str, ...] = ()) -> Anomaly:
    return Anomaly(node, 1.0, onset, (f"{node}|{kinds[0]}",), kinds, diagnosed)


def callers_slow() -> dict[str, Anomaly]:
    both = (*SERVER_LATENCY, *CLIENT_LATENCY)
    return {n: slow(n, kinds=both, diagnosed=HIGH_LATENCY) for n in ("gateway", "frontend")}


def ranked(anomalies: dict[str, Anomaly], hints: dict[str, float]) -> list[str]:
    causes = rank(SHOP, anomalies, observed=OBSERVED, pattern_hints=hints, mode="traversal")
    return [c.node for c in causes]


def test_overload_outranks_a_callee_slowed_by_the_contention() -> None:
    # checkout's bot traffic slows inventory on the same CPU, even a little earlier; inventory
    # shows only latency, which its overloaded caller shows too: its victim, not the cause
    an = {
        **callers_slow(),
        "checkout": slow("checkout", 11.0, (*OVERLOAD, *CLIENT_LATENCY),
                         (*OVERLOAD, *HIGH_LATENCY)),
        "inventory": slow("inventory", 9.0, diagnosed=HIGH_LATENCY),
    }
    hints = dict.fromkeys(an, 1.0)
    causes = rank(SHOP, an, observed=OBSERVED, pattern_hints=hints, mode="traversal")
    assert causes[0].node == "checkout"
    assert causes[0].path == ("gateway", "frontend", "checkout")
    inventory = next(c for c in causes if c.node == "inventory")
    assert inventory.components["unexplained"] == 0.0
    assert "collateral of checkout" in inventory.explanation
    assert "http.server.request.rate" in causes[0].explanation


def test_overload_outranks_the_database_inferred_from_a_contended_callee() -> None:
    # the contention also slows inventory's database calls: its database may be inferred,
    # but only as collateral of the same overload
    an = {
        **callers_slow(),
        "checkout": slow("checkout", 10.0, (*OVERLOAD, *CLIENT_LATENCY), OVERLOAD),
        "inventory": slow("inventory", 9.0, ("db.client.operation.duration.mean",)),
    }
    order = ranked(an, dict.fromkeys(an, 1.0))
    assert order[0] == "checkout"
    assert "inventory-db" in order


def test_slow_leaf_is_not_collateral_of_callers_showing_the_same_symptom() -> None:
    an = {
        **callers_slow(),
        "checkout": slow("checkout", 10.0, (*SERVER_LATENCY, *CLIENT_LATENCY), HIGH_LATENCY),
        "inventory": slow("inventory", 10.0, diagnosed=HIGH_LATENCY),
    }
    assert ranked(an, dict.fromkeys(an, 1.0))[0] == "inventory"


def test_slow_leaf_undiagnosed_yet_still_explains_its_diagnosed_caller() -> None:
    # inventory's mean has not crossed yet (only its p95): its latency explains checkout's
    an = {
        **callers_slow(),
        "checkout": slow("checkout", 10.0, (*SERVER_LATENCY, *CLIENT_LATENCY), HIGH_LATENCY),
        "inventory": slow("inventory", 10.0, ("http.server.duration.p95",)),
    }
    hints = {n: 1.0 for n in ("gateway", "frontend", "checkout")}
    assert ranked(an, hints)[0] == "inventory"


def test_slow_query_roots_at_the_hidden_database_over_an_unrelated_jitter() -> None:
    # a p95 blip of payment (unexplained, full strength, no diagnosis) next to the slow
    # query: the database carries its caller's SlowQuery diagnosis and wins
    an = {
        **callers_slow(),
        "checkout": slow("checkout", 10.0, CLIENT_LATENCY),
        "inventory": slow("inventory", 9.0, (*SLOW_QUERY, "http.server.duration.p95"),
                          (*SLOW_QUERY, *HIGH_LATENCY)),
        "payment": slow("payment", 9.0, ("http.server.duration.p95",)),
    }
    hints = {"gateway": 1.0, "frontend": 1.0, "inventory": 1.0}
    causes = rank(SHOP, an, observed=OBSERVED, pattern_hints=hints, mode="traversal")
    assert [c.node for c in causes[:2]] == ["inventory-db", "payment"]
    db = causes[0]
    assert db.components["hint"] == 1.0 and db.components["unexplained"] == 1.0
    assert db.path == ("gateway", "frontend", "checkout", "inventory", "inventory-db")
    assert "no metrics of its own" in db.explanation and "score" in db.explanation


def test_a_diagnosed_pattern_needs_every_family_accounted_for() -> None:
    overloaded = slow("checkout", kinds=(*OVERLOAD, *CLIENT_LATENCY), diagnosed=OVERLOAD)
    assert not explains(slow("inventory"), overloaded)
    assert explains(slow("inventory"), slow("checkout", diagnosed=HIGH_LATENCY))
    down = Anomaly("inventory", 1.0, 10.0, ("health:inventory",), ("health.down",))
    assert explains(down, overloaded)


def test_a_pool_exhausted_client_does_not_implicate_its_database() -> None:
    # the pool is the caller's own resource: its metrics say nothing about the database
    pool = ("db.client.connection.utilization", "db.client.connection.wait_time.mean")
    an = {
        **callers_slow(),
        "checkout": slow("checkout", 10.0, (*SERVER_LATENCY, *CLIENT_LATENCY)),
        "inventory": slow("inventory", 10.0, (*pool, *SERVER_LATENCY)),
    }
    order = ranked(an, dict.fromkeys(an, 1.0))
    assert order[0] == "inventory" and "inventory-db" not in order


def test_without_diagnoses_the_ranking_is_the_reference_traversal() -> None:
    # the batch path (PetShop) passes no diagnoses and no hints: one shared family explains
    an = {"checkout": slow("checkout", kinds=OVERLOAD), "inventory": slow("inventory")}
    causes = rank(SHOP, an, mode="traversal")
    assert causes[0].node == "inventory"
    assert set(causes[0].components) == {"unexplained", "onset", "evidence"}


def test_database_slowed_before_its_client_answers_is_blamed_in_full() -> None:
    # inventory's queries slowed a second before its answers: its database is inferred at
    # its full score, not discounted as a guess from a single caller
    kinds = ("db.client.operation.duration.mean", "http.server.duration.mean")
    first = Anomaly("inventory", 1.0, 9.0, ("i",), kinds, SLOW_QUERY, onsets=(9.0, 10.0))
    later = Anomaly("inventory", 1.0, 9.0, ("i",), kinds, SLOW_QUERY, onsets=(10.0, 9.0))
    for inv, score in ((first, 1.0), (later, 0.5)):
        an = {**callers_slow(), "checkout": slow("checkout", 10.0, CLIENT_LATENCY),
              "inventory": inv}
        causes = rank(SHOP, an, observed=OBSERVED, mode="traversal")
        db = next(c for c in causes if c.node == "inventory-db")
        assert db.rank == 1 and db.components["evidence"] == score


def test_a_query_jitter_under_a_slow_handler_does_not_blame_the_database() -> None:
    # slow-leaf: inventory answers 300 ms slower; its queries jittered by 0.1 ms at the same
    # time (enough for a SlowQuery diagnosis): the database does not account for it
    kinds = ("db.client.operation.duration.mean", "http.server.duration.mean")
    jitter = Anomaly("inventory", 1.0, 9.0, ("i",), kinds, SLOW_QUERY, onsets=(9.0, 10.0),
                     deltas=(0.0001, 0.30))
    an = {**callers_slow(), "checkout": slow("checkout", 10.0, CLIENT_LATENCY),
          "inventory": jitter}
    order = ranked(an, dict.fromkeys(an, 0.75))
    assert order[0] == "inventory" and "inventory-db" not in order
    dropped = Anomaly("inventory", 1.0, 9.0, ("i",), kinds, SLOW_QUERY, onsets=(9.0, 10.0),
                      deltas=(0.015, 0.016))
    assert ranked({**an, "inventory": dropped}, dict.fromkeys(an, 0.75))[0] == "inventory-db"


def test_a_callee_losing_traffic_to_a_failing_caller_is_collateral() -> None:
    # inventory's pool is exhausted: checkout fails before it calls payment, whose request
    # rate collapses (a ServiceDown by rate) while it still reports
    pool = ("db.client.connection.utilization", "http.server.error.ratio")
    failing = {n: Anomaly(n, 1.0, 10.0, (n,), ("http.server.error.ratio",), deltas=(0.5,))
               for n in ("gateway", "frontend")}
    an = {
        **failing,
        "checkout": Anomaly("checkout", 1.0, 10.0, ("c",),
                            ("http.server.error.ratio", "http.client.error.ratio"),
                            deltas=(0.5, 0.5)),
        "inventory": Anomaly("inventory", 1.0, 10.0, ("i",), pool, deltas=(0.9, 0.5)),
        "payment": Anomaly("payment", 1.0, 10.0, ("p",), ("http.server.request.rate",),
                           ("http.server.request.rate",), deltas=(-15.0,)),
    }
    causes = rank(SHOP, an, observed=OBSERVED, pattern_hints=dict.fromkeys(an, 0.875),
                  mode="traversal")
    assert causes[0].node == "inventory"
    payment = next(c for c in causes if c.node == "payment")
    assert payment.components["unexplained"] == 0.0
    assert "traffic lost upstream" in payment.explanation
    # more traffic is not lost traffic
    more = {**an, "payment": Anomaly("payment", 1.0, 10.0, ("p",),
                                     ("http.server.request.rate",), deltas=(15.0,))}
    causes = rank(SHOP, more, observed=OBSERVED, mode="traversal")
    assert next(c for c in causes if c.node == "payment").components["unexplained"] == 1.0
