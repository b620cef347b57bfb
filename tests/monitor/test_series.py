"""Series derivations: counters and resets, delta sums, gauges, histograms, bounds, dedup."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from selfheal_kg.clock import FakeClock
from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor.series import SeriesStore

S = 10**9
CUMULATIVE, DELTA = 2, 1


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _request(
    *metrics: pb.Metric, service: str = "shop", **resource: str
) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend([_kv("service.name", service)])
    rm.resource.attributes.extend(_kv(k, v) for k, v in resource.items())
    rm.scope_metrics.add().metrics.extend(metrics)
    return request


def _counter(
    value: float,
    t: float,
    start: float = 100,
    *,
    name: str = "orders",
    unit: str = "",
    temporality: int = CUMULATIVE,
    monotonic: bool = True,
    **attrs: str | int,
) -> pb.Metric:
    metric = pb.Metric(name=name, unit=unit)
    metric.sum.aggregation_temporality = temporality
    metric.sum.is_monotonic = monotonic
    dp = metric.sum.data_points.add(
        start_time_unix_nano=int(start * S), time_unix_nano=int(t * S), as_double=value
    )
    dp.attributes.extend(_kv(k, v) for k, v in attrs.items())
    return metric


def _gauge(value: float, t: float, *, name: str = "cpu", unit: str = "", **attrs: str) -> pb.Metric:
    metric = pb.Metric(name=name, unit=unit)
    dp = metric.gauge.data_points.add(time_unix_nano=int(t * S), as_double=value)
    dp.attributes.extend(_kv(k, v) for k, v in attrs.items())
    return metric


def _histogram(
    counts: Sequence[int],
    t: float,
    *,
    bounds: Sequence[float] = (0.1, 0.5, 1.0),
    total: float | None = None,
    start: float = 100,
    name: str = "http.server.request.duration",
    unit: str = "s",
    temporality: int = CUMULATIVE,
    count: int | None = None,
    **attrs: str | int,
) -> pb.Metric:
    metric = pb.Metric(name=name, unit=unit)
    metric.histogram.aggregation_temporality = temporality
    dp = metric.histogram.data_points.add(
        start_time_unix_nano=int(start * S),
        time_unix_nano=int(t * S),
        count=sum(counts) if count is None else count,
        explicit_bounds=bounds,
        bucket_counts=counts,
    )
    if total is not None:
        dp.sum = total
    dp.attributes.extend(_kv(k, v) for k, v in attrs.items())
    return metric


def _values(store: SeriesStore) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for p in store.drain():
        out.setdefault(p.metric, []).append(p.value)
    return out


@pytest.fixture
def store() -> SeriesStore:
    return SeriesStore(FakeClock(), max_points_per_series=5)


def test_counter_rate_is_the_increase_over_the_interval(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(10, 110)), 1)
    store.ingest_metrics(_request(_counter(30, 120)), 2)
    [point] = store.drain()
    assert point == DerivedPoint("shop|orders.rate", "shop", "orders.rate", 120.0, 2.0)


def test_counter_reset_by_new_start_time_counts_from_zero(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(50, 110)), 1)
    store.ingest_metrics(_request(_counter(8, 120, start=116)), 2)
    assert _values(store) == {"orders.rate": [2.0]}


def test_counter_drop_without_new_start_is_a_reset(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(50, 110)), 1)
    store.ingest_metrics(_request(_counter(20, 120)), 2)
    assert _values(store) == {"orders.rate": [2.0]}


def test_start_time_moving_back_rebaselines_instead_of_spiking(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(50, 110)), 1)
    store.ingest_metrics(_request(_counter(9000, 120, start=50)), 2)
    store.ingest_metrics(_request(_counter(9010, 130, start=50)), 3)
    assert _values(store) == {"orders.rate": [1.0]}


def test_rates_of_streams_add_up_per_node(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(0, 110, route="/a"), _counter(0, 110, route="/b")), 1)
    store.ingest_metrics(_request(_counter(10, 120, route="/a"), _counter(40, 120, route="/b")), 2)
    assert _values(store) == {"orders.rate": [5.0]}


def test_new_stream_of_a_known_resource_counts_in_full(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(0, 110, route="/a")), 1)
    store.ingest_metrics(_request(_counter(10, 120, route="/a"), _counter(30, 120, route="/b")), 2)
    assert _values(store) == {"orders.rate": [4.0]}


def test_first_export_of_a_resource_is_only_a_baseline(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(10, 110)), 1)
    store.ingest_metrics(_request(_counter(99, 110, route="/x"), service="other"), 1)
    assert store.drain() == []


def test_delta_sum_is_per_interval(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(20, 110, start=100, temporality=DELTA)), 1)
    store.ingest_metrics(_request(_counter(5, 120, start=110, temporality=DELTA)), 2)
    assert _values(store) == {"orders.rate": [2.0, 0.5]}


def test_non_monotonic_sums_are_summed_values(store: SeriesStore) -> None:
    inflight = {"name": "http.server.active_requests", "monotonic": False}
    store.ingest_metrics(
        _request(
            _counter(3, 110, **inflight, route="/a"), _counter(4, 110, **inflight, route="/b")
        ),
        1,
    )
    store.ingest_metrics(_request(_counter(2, 110, **inflight, temporality=DELTA, q="x")), 1)
    assert _values(store) == {"http.server.active_requests": [7.0, 2.0]}


def test_gauges_are_averaged_and_units_normalised(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_gauge(0.2, 110, cpu="0"), _gauge(0.4, 110, cpu="1")), 1)
    store.ingest_metrics(_request(_gauge(250, 110, name="queue.wait", unit="ms")), 1)
    values = _values(store)
    assert values["cpu"] == [pytest.approx(0.3)]
    assert values["queue.wait"] == [pytest.approx(0.25)]


def test_histogram_interval_gives_rate_errors_mean_and_p95(store: SeriesStore) -> None:
    ok, failed = {"http.response.status_code": 200}, {"http.response.status_code": 500}
    store.ingest_metrics(
        _request(
            _histogram([1, 0, 0, 0], 110, total=0.05, **ok),
            _histogram([0, 0, 0, 0], 110, total=0.0, **failed),
        ),
        1,
    )
    store.ingest_metrics(
        _request(
            _histogram([5, 4, 0, 0], 120, total=1.45, **ok),
            _histogram([0, 0, 2, 0], 120, total=1.6, **failed),
        ),
        2,
    )
    values = _values(store)
    assert values["http.server.request.rate"] == [pytest.approx(1.0)]
    assert values["http.server.error.ratio"] == [pytest.approx(0.2)]
    assert values["http.server.duration.mean"] == [pytest.approx(0.3)]
    assert values["http.server.duration.p95"] == [pytest.approx(0.875)]


def test_old_http_duration_in_ms_is_converted_to_seconds(store: SeriesStore) -> None:
    old = {"name": "http.server.duration", "unit": "", "bounds": (100.0, 500.0, 1000.0)}
    store.ingest_metrics(_request(_histogram([0, 0, 0, 0], 110, total=0, **old)), 1)
    store.ingest_metrics(_request(_histogram([2, 2, 0, 0], 120, total=600, **old)), 2)
    values = _values(store)
    assert values["http.server.duration.mean"] == [pytest.approx(0.15)]
    assert values["http.server.duration.p95"] == [pytest.approx(0.1 + 0.4 * 0.9)]


def test_old_status_code_name_and_error_type_mark_errors(store: SeriesStore) -> None:
    client = {"name": "http.client.request.duration"}
    store.ingest_metrics(
        _request(
            _histogram([0, 0, 0, 0], 110, **client, **{"http.status_code": "503"}),
            _histogram([0, 0, 0, 0], 110, **client, **{"error.type": "timeout"}),
            _histogram(
                [0, 0, 0, 0],
                110,
                **client,
                **{"http.response.status_code": 404, "error.type": "404"},
            ),
        ),
        1,
    )
    store.ingest_metrics(
        _request(
            _histogram([1, 0, 0, 0], 120, **client, **{"http.status_code": "503"}),
            _histogram([1, 0, 0, 0], 120, **client, **{"error.type": "timeout"}),
            _histogram(
                [2, 0, 0, 0],
                120,
                **client,
                **{"http.response.status_code": 404, "error.type": "404"},
            ),
        ),
        2,
    )
    assert _values(store)["http.client.error.ratio"] == [pytest.approx(0.5)]


def test_delta_histogram_and_generic_names(store: SeriesStore) -> None:
    store.ingest_metrics(
        _request(
            _histogram(
                [2, 2, 0, 0],
                110,
                start=100,
                total=1.0,
                name="db.client.operation.duration",
                temporality=DELTA,
            )
        ),
        1,
    )
    values = _values(store)
    assert values["db.client.operation.duration.rate"] == [pytest.approx(0.4)]
    assert values["db.client.operation.duration.mean"] == [pytest.approx(0.25)]
    assert "db.client.operation.duration.p95" in values


@pytest.mark.parametrize(
    ("metric", "reason"),
    [
        (_histogram([1, 1], 110), "bucket_counts"),
        (_histogram([1, 1, 1, 1], 110, count=5), "count 5"),
        (_histogram([1, 1, 1, 1], 110, bounds=(0.5, 0.1, 1.0)), "strictly increasing"),
        (_gauge(math.nan, 110), "not finite"),
        (_gauge(1.0, 0), "time_unix_nano"),
        (_counter(1.0, 110, start=120), "start_time"),
        (_counter(1.0, 110, temporality=0), "temporality"),
    ],
)
def test_invalid_points_are_rejected_and_counted(
    store: SeriesStore, metric: pb.Metric, reason: str
) -> None:
    stats = store.ingest_metrics(_request(metric, _gauge(1.0, 110, name="fine")), 1)
    assert (stats.accepted, stats.rejected) == (1, 1)
    assert reason in stats.message
    assert [p.metric for p in store.drain()] == ["fine"]


def test_duplicate_delivery_is_not_double_counted(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(10, 110), _gauge(1, 110)), 1)
    second = _request(_counter(30, 120), _gauge(2, 120))
    store.ingest_metrics(second, 2)
    again = store.ingest_metrics(second, 3)
    assert (again.accepted, again.rejected, again.duplicates) == (2, 0, 2)
    assert _values(store) == {"cpu": [1.0, 2.0], "orders.rate": [2.0]}


def test_two_collections_in_one_export_are_two_points(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(0, 110)), 1)
    store.ingest_metrics(_request(_counter(10, 120), _counter(40, 130)), 2)
    assert _values(store) == {"orders.rate": [1.0, 3.0]}


def test_no_recorded_value_forgets_the_stream(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_counter(10, 110)), 1)
    stale = _counter(0, 120)
    stale.sum.data_points[0].flags = 1
    store.ingest_metrics(_request(stale), 2)
    store.ingest_metrics(_request(_counter(500, 130)), 3)  # known resource: counts since 120
    assert _values(store) == {"orders.rate": [50.0]}


def test_history_is_bounded_and_ordered(store: SeriesStore) -> None:
    for i in range(8):
        store.ingest_metrics(_request(_gauge(float(i), 110 + i)), i)
    times, values = store.window("shop|cpu")
    assert list(values) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert bool(np.all(np.diff(times) > 0))
    assert store.window("nope|cpu")[0].size == 0
    assert [p.value for p in store.drain()] == [float(i) for i in range(8)]


def test_stream_cap_refuses_new_streams_and_counts_them() -> None:
    store = SeriesStore(FakeClock(), max_streams=2)
    stats = store.ingest_metrics(_request(*(_gauge(1.0, 110, name=f"g{i}") for i in range(3))), 1)
    assert (stats.accepted, stats.rejected) == (2, 1)
    assert "too many streams" in stats.message
    assert store.refused_streams == 1
    assert store.stream_count() == 2


def test_idle_streams_are_evicted_to_make_room() -> None:
    clock = FakeClock(start=10_000)
    store = SeriesStore(clock, max_streams=1, stream_idle_seconds=60)
    store.ingest_metrics(_request(_gauge(1.0, 110, name="old")), clock.now())
    clock.advance(120)
    stats = store.ingest_metrics(_request(_gauge(1.0, 230, name="new")), clock.now())
    assert stats.rejected == 0
    assert store.stream_count() == 1


def test_last_seen_touch_and_nodes(store: SeriesStore) -> None:
    store.ingest_metrics(_request(_gauge(1, 110), service="a"), 5.0)
    store.touch("b", 7.0)
    store.touch("a", 4.0)  # older news does not move it back
    assert store.last_seen() == {"a": 5.0, "b": 7.0}
    assert store.nodes() == ["a", "b"]
    assert store.ingest_metrics(_request(), 8.0).accepted == 0
    assert store.last_seen()["shop"] == 8.0


def test_exponential_histogram_rate_and_p95(store: SeriesStore) -> None:
    def expo(t: float, scale: int, offset: int, counts: list[int], total: float) -> pb.Metric:
        metric = pb.Metric(name="rpc.server.call.duration", unit="s")
        metric.exponential_histogram.aggregation_temporality = CUMULATIVE
        dp = metric.exponential_histogram.data_points.add(
            start_time_unix_nano=100 * S,
            time_unix_nano=int(t * S),
            count=sum(counts),
            sum=total,
            scale=scale,
        )
        dp.positive.offset = offset
        dp.positive.bucket_counts.extend(counts)
        return metric

    # scale 0: bucket k is (2^k, 2^(k+1)]; then scale 1 (finer) must be downscaled to diff
    store.ingest_metrics(_request(expo(110, 0, 0, [1, 1], 4.0)), 1)
    store.ingest_metrics(_request(expo(120, 1, 0, [1, 1, 2, 6], 30.0)), 2)
    values = _values(store)
    assert values["rpc.server.call.duration.rate"] == [pytest.approx(0.8)]
    assert values["rpc.server.call.duration.mean"] == [pytest.approx(26 / 8)]
    # interval: (1, 2] gets 1, (2, 4] gets 7 → rank 7.6 is 6.6/7 into (2, 4]
    assert values["rpc.server.call.duration.p95"] == [pytest.approx(2 + 2 * 6.6 / 7)]


def test_summary_gives_rate_and_mean(store: SeriesStore) -> None:
    def summary(t: float, count: int, total: float) -> pb.Metric:
        metric = pb.Metric(name="gc.pause", unit="ms")
        metric.summary.data_points.add(
            start_time_unix_nano=100 * S, time_unix_nano=int(t * S), count=count, sum=total
        )
        return metric

    store.ingest_metrics(_request(summary(110, 10, 100.0)), 1)
    store.ingest_metrics(_request(summary(120, 30, 500.0)), 2)
    values = _values(store)
    assert values["gc.pause.rate"] == [pytest.approx(2.0)]
    assert values["gc.pause.mean"] == [pytest.approx(0.02)]


def test_summary_quantiles_are_kept_per_stream_in_base_units(store: SeriesStore) -> None:
    metric = pb.Metric(name="gc.pause", unit="ms")
    for region, p95 in (("eu", 40.0), ("us", 90.0)):
        dp = metric.summary.data_points.add(
            start_time_unix_nano=100 * S, time_unix_nano=110 * S, count=10, sum=100.0
        )
        dp.attributes.add(key="region").value.string_value = region
        dp.quantile_values.add(quantile=0.95, value=p95)
        dp.quantile_values.add(quantile=0.42, value=1.0)  # not a kept quantile
    store.ingest_metrics(_request(metric), 1)
    got = {p.series: p.value for p in store.drain() if p.metric == "gc.pause.p95"}
    assert sorted(got.values()) == [pytest.approx(0.04), pytest.approx(0.09)]
    assert len(got) == 2 and all("region=" in s for s in got)


def _by_series(store: SeriesStore) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for p in store.drain():
        assert p.node == "checkout"  # signals name the node, whatever the series
        out.setdefault(p.series, []).append(p.value)
    return out


def test_instances_of_one_node_get_a_series_each(store: SeriesStore) -> None:
    # one instance alone: the node's series
    store.ingest_metrics(_request(_gauge(0.0, 100), service="checkout",
                                  **{"service.instance.id": "checkout"}), 1)
    assert _by_series(store) == {"checkout|cpu": [0.0]}
    # a second instance exports: it may be the first one's replacement, until the first one
    # exports again; from then on each instance's exports are their own series, not one
    # series jumping between a failing and a healthy instance
    for t in (2, 3):
        store.ingest_metrics(_request(_gauge(1.0, 100 + t), service="checkout",
                                      **{"service.instance.id": "checkout-2"}), t)
        store.ingest_metrics(_request(_gauge(0.0, 100 + t), service="checkout",
                                      **{"service.instance.id": "checkout"}), t)
    assert _by_series(store) == {"checkout|cpu": [1.0],
                                 "checkout|cpu|checkout-2": [1.0],
                                 "checkout|cpu|checkout": [0.0, 0.0]}
    # a third joins a node already running several: its own series from its first export
    store.ingest_metrics(_request(_gauge(2.0, 104), service="checkout",
                                  **{"service.instance.id": "checkout-3"}), 4)
    assert _by_series(store) == {"checkout|cpu|checkout-3": [2.0]}
    # the second instance gone for longer than the window: one series for the node again
    store.ingest_metrics(_request(_gauge(0.0, 200), service="checkout",
                                  **{"service.instance.id": "checkout"}), 100)
    assert _by_series(store) == {"checkout|cpu": [0.0]}


def test_a_restarted_process_with_a_new_instance_id_continues_the_node_series(
    store: SeriesStore,
) -> None:
    """An SDK gives each process a new instance id: a restart is a replacement, not a
    second instance, so the detectors compare it with the baseline from before."""
    for t in (1, 2, 3):
        store.ingest_metrics(_request(_gauge(0.5, 100 + t), service="inventory",
                                      **{"service.instance.id": "a1f3"}), t)
    for t in (5, 6, 7):  # the old process stopped at 3; its successor exports from 5
        store.ingest_metrics(_request(_gauge(0.1, 100 + t), service="inventory",
                                      **{"service.instance.id": "9c02"}), t)
    assert {p.series for p in store.drain()} == {"inventory|cpu"}


def test_the_level_of_a_node_sums_its_instances_means_over_the_window(
    store: SeriesStore,
) -> None:
    rows = [(0.0, 0.0), (10.0, 30.0), (20.0, 50.0), (90.0, 90.0)]
    for t, (a, b) in enumerate(rows):  # points at 100 (both instances known from then), 101 ...
        store.ingest_metrics(_request(_gauge(a, 100 + t), service="checkout",
                                      **{"service.instance.id": "checkout"}), t)
        store.ingest_metrics(_request(_gauge(b, 100 + t), service="checkout",
                                      **{"service.instance.id": "checkout-2"}), t)
    # [101, 103): the means 15 and 40 of the two instances add up; the later point is outside
    assert store.level("checkout", "cpu", 101.0, 103.0) == pytest.approx(55.0)
    assert store.level("checkout", "cpu", 103.0, 104.0) == pytest.approx(180.0)
    assert store.level("checkout", "cpu", 110.0, 120.0) is None, "no points: no level"
    assert store.level("checkout", "mem", 101.0, 103.0) is None
    assert store.level("check", "cpu", 101.0, 103.0) is None, "a prefix of a name is not the node"


def test_the_level_of_a_single_instance_node_is_its_series_mean(store: SeriesStore) -> None:
    for t, v in enumerate([4.0, 8.0], start=1):
        store.ingest_metrics(_request(_gauge(v, 100 + t), service="api"), t)
    assert store.level("api", "cpu", 100.0, 110.0) == pytest.approx(6.0)
