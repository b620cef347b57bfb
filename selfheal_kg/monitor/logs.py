"""Error-log rate per service, from OTLP log records.

A record is an error when its ``severity_number`` is ERROR or above (≥ 17):
https://opentelemetry.io/docs/specs/otel/logs/data-model/#field-severitynumber. Each export
yields one ``log.error.rate`` point per service: errors since the service's previous export,
per second. Records already seen (a retried export) are not counted again, and an export
with nothing new yields no point. With a ``LogTemplates``, the body of each new error record
is also mined for templates (``templates.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor.attributes import attributes, node_of
from selfheal_kg.monitor.series import IngestStats, SeriesStore
from selfheal_kg.monitor.templates import LogTemplates

ERROR_SEVERITY: Final = 17
METRIC: Final = "log.error.rate"


class LogRates:
    """Turns log exports into ``log.error.rate`` points in the series store.

    Args:
        series: where the derived points go.
        max_remembered: records remembered to recognise redeliveries.
        templates: where error bodies go for template mining, if anywhere.
    """

    def __init__(
        self,
        series: SeriesStore,
        max_remembered: int = 100_000,
        templates: LogTemplates | None = None,
    ) -> None:
        self._series = series
        self.templates = templates
        self._max = max_remembered
        self._lock = threading.Lock()
        self._previous: dict[str, float] = {}
        self._seen: OrderedDict[Hashable, None] = OrderedDict()

    def ingest_logs(self, request: ExportLogsServiceRequest, received_at: float) -> IngestStats:
        """Count error records per service and append one rate point per service."""
        accepted = duplicates = 0
        errors: dict[str, int] = {}
        mined: list[tuple[str, LogRecord]] = []
        with self._lock:
            for rl in request.resource_logs:
                node = node_of(attributes(rl.resource.attributes))
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        accepted += 1
                        if not self._remember((node, *_fingerprint(record))):
                            duplicates += 1
                            continue
                        is_error = record.severity_number >= ERROR_SEVERITY
                        errors[node] = errors.get(node, 0) + int(is_error)
                        if is_error and self.templates is not None:
                            mined.append((node, record))
            points = [self._point(node, n, received_at) for node, n in errors.items()]
        for point in points:
            if point is not None:
                self._series.append(point)
        self._mine(mined, received_at)
        return IngestStats(accepted, 0, duplicates)

    def _mine(self, records: list[tuple[str, LogRecord]], received_at: float) -> None:
        """Feed error bodies to the template miner (outside our lock: mining is slower)."""
        if self.templates is None:
            return
        for node, record in records:
            stamp = record.time_unix_nano or record.observed_time_unix_nano
            self.templates.observe(node, record.body, stamp / 1e9 if stamp else received_at)

    def _remember(self, key: Hashable) -> bool:
        """Remember a record; return ``False`` when it was already seen."""
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True

    def _point(self, node: str, errors: int, received_at: float) -> DerivedPoint | None:
        previous = self._previous.get(node)
        self._previous[node] = received_at
        if previous is None or received_at <= previous:
            return None
        rate = errors / (received_at - previous)
        return DerivedPoint(f"{node}|{METRIC}", node, METRIC, received_at, rate)


def _fingerprint(record: LogRecord) -> tuple[int, int, bytes, bytes, int, bytes]:
    return (
        record.time_unix_nano,
        record.observed_time_unix_nano,
        record.trace_id,
        record.span_id,
        record.severity_number,
        record.body.SerializeToString(),
    )
