"""Error-log rate per service."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from selfheal_kg.clock import FakeClock
from selfheal_kg.monitor.logs import LogRates
from selfheal_kg.monitor.series import SeriesStore


def _logs(service: str, *severities: int, t0: int = 0) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    records = rl.scope_logs.add().log_records
    for i, severity in enumerate(severities):
        records.add(time_unix_nano=t0 + i, severity_number=severity).body.string_value = "boom"
    return request


@pytest.fixture
def series() -> SeriesStore:
    return SeriesStore(FakeClock())


def test_error_rate_per_service_since_its_previous_export(series: SeriesStore) -> None:
    logs = LogRates(series)
    logs.ingest_logs(_logs("api", 9, 17), 100.0)  # the first export only starts the clock
    stats = logs.ingest_logs(_logs("api", 9, 17, 18, 24, 13, t0=10), 110.0)
    assert stats.accepted == 5
    [point] = series.drain()
    assert (point.series, point.t, point.value) == ("api|log.error.rate", 110.0, 0.3)


def test_redelivered_records_are_not_counted_again(series: SeriesStore) -> None:
    logs = LogRates(series)
    logs.ingest_logs(_logs("api", 17), 100.0)
    logs.ingest_logs(_logs("api", 17, 17, t0=10), 110.0)
    again = logs.ingest_logs(_logs("api", 17, 17, t0=10), 111.0)
    assert again.duplicates == 2
    logs.ingest_logs(_logs("api", 9, t0=20), 120.0)
    assert [p.value for p in series.drain()] == [0.2, 0.0]
