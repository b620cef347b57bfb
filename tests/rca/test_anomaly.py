from __future__ import annotations

from selfheal_kg.rca.anomaly import Anomaly, calls_out, families, first_calls_out


def test_outgoing_call_metrics_exclude_the_clients_own_pool() -> None:
    assert calls_out("http.client.duration.mean")
    assert calls_out("db.client.operation.duration.mean")
    assert not calls_out("db.client.connection.wait_time.mean")
    assert not calls_out("http.server.duration.mean")


def test_first_symptom_on_outgoing_calls() -> None:
    kinds = ("db.client.operation.duration.mean", "http.server.duration.mean")
    assert first_calls_out(Anomaly("inv", 1.0, 7.0, (), kinds, onsets=(7.0, 8.0)))
    assert first_calls_out(Anomaly("inv", 1.0, 7.0, (), kinds, onsets=(7.0, 7.0)))
    assert not first_calls_out(Anomaly("inv", 1.0, 7.0, (), kinds, onsets=(9.0, 7.0)))
    assert not first_calls_out(Anomaly("inv", 1.0, 7.0, (), kinds))  # onsets unknown


def test_families_group_statistics_of_one_measure() -> None:
    assert families(("http.server.duration.mean", "db.client.operation.duration.p95")) == {
        "latency"}
    assert families(("http.server.request.rate",)) == {"http"}


def test_outgoing_share_compares_like_statistics() -> None:
    from selfheal_kg.rca.anomaly import outgoing_share

    kinds = ("db.client.operation.duration.mean", "http.server.duration.mean",
             "http.server.duration.p95")
    # a dropped index: queries 15 ms slower, answers 15 ms (mean) / 45 ms (p95) slower
    slow_query = Anomaly("inv", 1.0, 1.0, (), kinds, deltas=(0.0152, 0.0155, 0.045))
    share = outgoing_share(slow_query)
    assert share is not None and share > 0.9
    # a slow handler: queries 0.1 ms slower, answers 300 ms slower
    slow_leaf = Anomaly("inv", 1.0, 1.0, (), kinds[:2], deltas=(0.0001, 0.3))
    assert outgoing_share(slow_leaf) == 0.0001 / 0.3
    only_queries = Anomaly("inv", 1.0, 1.0, (), kinds[:1], deltas=(0.01,))
    assert outgoing_share(only_queries) == 1.0
    assert outgoing_share(Anomaly("inv", 1.0, 1.0, (), kinds[1:], deltas=(0.1, 0.2))) is None
    assert outgoing_share(Anomaly("inv", 1.0, 1.0, (), kinds)) is None  # deltas unknown
