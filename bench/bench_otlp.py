"""OTLP metrics intake throughput, in points/s: decode only, decode + walk, end-to-end.

Usage: .venv/bin/python bench/bench_otlp.py [SECONDS_PER_CASE] [--memory-only | --no-memory]
One request = 20 services x (30 routes x 2 status codes of http.server.request.duration,
30 counters, 5 gauges) ≈ 2,500 points, as an SDK would export them. "decode + walk" touches
every point's attributes and values from Python (the floor of any Python ingestion);
"end-to-end" is ``Intake.accept``: decode, stream state, derivations, ring buffers.

Memory per active series (one OTLP stream: resource, scope, metric, point attributes) is
measured with tracemalloc (numpy reports its buffers to it) as the growth of a store fed two
exports of N streams, minus the same for an empty store; derived rings are included.
"""

from __future__ import annotations

import gc
import gzip
import sys
import time
import tracemalloc
from collections.abc import Callable

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE as CUMULATIVE,
)

from selfheal_kg.clock import FakeClock
from selfheal_kg.monitor import otlp
from selfheal_kg.monitor.attributes import attribute_key
from selfheal_kg.monitor.intake import Intake
from selfheal_kg.monitor.series import SeriesStore

S = 10**9
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build(step: int, services: int = 20, routes: int = 30) -> ExportMetricsServiceRequest:
    """One export at collection ``step`` (10 s apart), cumulative like the SDK's."""
    t = (1_700_000_000 + 10 * step) * S
    request = ExportMetricsServiceRequest()
    for s in range(services):
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(
            [_kv("service.name", f"svc-{s}"), _kv("service.instance.id", f"i-{s}")]
        )
        metrics = rm.scope_metrics.add(scope={"name": "bench"}).metrics
        hist = metrics.add(name="http.server.request.duration", unit="s").histogram
        hist.aggregation_temporality = CUMULATIVE
        total = metrics.add(name="jobs.done", unit="1").sum
        total.aggregation_temporality, total.is_monotonic = CUMULATIVE, True
        for r in range(routes):
            for status in (200, 500):
                n = (step + 1) * (50 if status == 200 else 1)
                counts = [n // 10] * 9 + [n - 9 * (n // 10)] + [0] * 5
                dp = hist.data_points.add(
                    start_time_unix_nano=1_600_000_000 * S,
                    time_unix_nano=t,
                    count=n,
                    sum=0.05 * n,
                    explicit_bounds=BOUNDS,
                    bucket_counts=counts,
                )
                dp.attributes.extend(
                    [
                        _kv("http.request.method", "GET"),
                        _kv("http.route", f"/r{r}"),
                        _kv("http.response.status_code", status),
                        _kv("url.scheme", "http"),
                    ]
                )
            total.data_points.add(
                start_time_unix_nano=1_600_000_000 * S, time_unix_nano=t, as_int=step * r
            ).attributes.append(_kv("queue", f"q{r}"))
        for g in range(5):
            gauge = metrics.add(name=f"process.gauge.{g}").gauge
            gauge.data_points.add(time_unix_nano=t, as_double=float(step + g))
    return request


def count_points(request: ExportMetricsServiceRequest) -> int:
    n = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is not None:
                    n += len(getattr(m, kind).data_points)
    return n


def walk(request: ExportMetricsServiceRequest) -> float:
    """Touch every point's attributes and values, as any Python ingestion must."""
    acc = 0.0
    for rm in request.resource_metrics:
        attribute_key(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data") or "gauge"
                for dp in getattr(m, kind).data_points:
                    attribute_key(dp.attributes)
                    acc += dp.time_unix_nano
                    if kind == "histogram":
                        acc += sum(dp.bucket_counts) + dp.sum
                    else:
                        acc += dp.as_double + dp.as_int
    return acc


def timed(label: str, points_per_call: int, seconds: float, call: Callable[[int], object]) -> float:
    """Run ``call`` for ``seconds``; print and return points per CPU-second (per core).

    CPU time of this process, not wall time, is the denominator: on a shared machine the
    wall-clock rate also measures the neighbours (both are printed).
    """
    calls, started, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        call(calls)
        calls += 1
    used = time.process_time() - cpu
    rate, wall = calls * points_per_call / used, calls * points_per_call / elapsed
    print(
        f"{label:<34} {rate:>12,.0f} points/s per core  "
        f"({calls} requests, {used:.1f} s CPU; wall {wall:,.0f} points/s)"
    )
    return rate


def stream_count(services: int, routes: int) -> int:
    """Return the streams of one ``build`` request: histograms, counters, gauges."""
    return services * (routes * 3 + 5)


def memory_per_series(services: int, routes: int) -> tuple[int, int, float]:
    """Return (active series, empty store bytes, bytes per series) after two exports.

    Two exports: the first sets each stream's baseline, the second derives an interval.
    """
    bodies = [build(step, services, routes).SerializeToString() for step in range(2)]
    series = stream_count(services, routes)

    def grown(feed: bool) -> int:
        clock = FakeClock()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        store = SeriesStore(clock, max_streams=2 * series, max_series=2 * series)
        intake = Intake(store, clock, 1 << 30)
        for body in bodies if feed else ():
            intake.accept("metrics", body, otlp.PROTOBUF, None)
        gc.collect()
        size = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert not feed or store.stream_count() == series, store.stream_count()
        del intake, store
        return size

    empty = grown(False)
    return series, empty, (grown(True) - empty) / series


def memory(cases: tuple[tuple[int, int], ...] = ((20, 165), (200, 165))) -> None:
    """Print bytes per active series at each size (target: at most 1 KB)."""
    for services, routes in cases:
        series, empty, per = memory_per_series(services, routes)
        print(
            f"memory, {series:>7,} active series     {per:>8,.0f} bytes/series "
            f"(empty store: {empty:,} bytes, subtracted)"
        )


def main(seconds: float) -> None:
    bodies = [build(step).SerializeToString() for step in range(400)]
    gzipped = [gzip.compress(b) for b in bodies[:200]]
    points = count_points(build(0))
    print(f"{points} points per request, {len(bodies[0]):,} bytes protobuf")

    timed(
        "decode only (protobuf)",
        points,
        seconds,
        lambda i: otlp.parse("metrics", bodies[i % 50], "protobuf"),
    )
    timed(
        "decode + walk",
        points,
        seconds,
        lambda i: walk(otlp.decode("metrics", bodies[i % 50], otlp.PROTOBUF, None, 1 << 26)),
    )

    clock = FakeClock()
    intake = Intake(SeriesStore(clock), clock, 64 << 20)
    timed(
        "end-to-end Intake.accept",
        points,
        seconds,
        lambda i: intake.accept("metrics", bodies[i % len(bodies)], otlp.PROTOBUF, None),
    )
    print(f"  derived points pending: {len(intake.series.drain()):,}")
    intake = Intake(SeriesStore(clock), clock, 64 << 20)
    timed(
        "end-to-end, gzip",
        points,
        seconds,
        lambda i: intake.accept("metrics", gzipped[i % len(gzipped)], otlp.PROTOBUF, "gzip"),
    )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--memory-only" not in sys.argv:
        main(float(args[0]) if args else 3.0)
    if "--no-memory" not in sys.argv:
        memory()
