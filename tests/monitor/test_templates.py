"""New error-log templates mined with drain3."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from selfheal_kg.clock import FakeClock
from selfheal_kg.monitor.logs import LogRates
from selfheal_kg.monitor.series import SeriesStore
from selfheal_kg.monitor.templates import LogTemplates


def _warm(clock: FakeClock, **kwargs: float) -> LogTemplates:
    templates = LogTemplates(clock, warmup_seconds=60, **kwargs)  # type: ignore[arg-type]
    templates.observe("api", "timeout after 31 ms to 10.0.0.1:5432", clock.now())
    clock.advance(61)
    return templates


def test_templates_seen_during_warm_up_are_baseline() -> None:
    clock = FakeClock()
    templates = _warm(clock)
    templates.observe("api", "timeout after 212 ms to 10.0.0.7:5432", clock.now())
    assert templates.drain() == []
    [tpl] = templates.templates("api")
    assert tpl.text == "timeout after <NUM> ms to <IP>"
    assert (tpl.count, tpl.new) == (2, False)


def test_new_template_after_warm_up_is_one_signal() -> None:
    clock = FakeClock()
    templates = _warm(clock)
    onset = clock.now() - 5
    templates.observe("api", "disk full on /var/lib/data", onset)
    templates.observe("api", "disk full on /var/lib/data", clock.now())
    [signal] = templates.drain()
    assert (signal.node, signal.metric, signal.detector) == ("api", "log.template.new", "drain3")
    assert (signal.direction, signal.score, signal.onset, signal.active) == ("up", 1.0, onset, True)
    assert templates.drain() == []


def test_template_new_per_service() -> None:
    clock = FakeClock()
    templates = _warm(clock)
    templates.observe("db", "timeout after 31 ms to 10.0.0.1:5432", clock.now())
    assert templates.drain() == []  # db's own warm-up has just begun
    assert [t.node for t in templates.templates()] == ["api", "db"]


def test_signal_clears_when_template_stops_recurring() -> None:
    clock = FakeClock()
    templates = _warm(clock, clear_after=100)
    templates.observe("api", "disk full", clock.now())
    [raised] = templates.drain()
    clock.advance(60)
    templates.observe("api", "disk full", clock.now())
    clock.advance(60)
    assert templates.drain() == []  # recurred 60 s ago
    clock.advance(40)
    [cleared] = templates.drain()
    assert cleared.id == raised.id
    assert not cleared.active


def test_evicted_template_is_not_news_again() -> None:
    clock = FakeClock()
    templates = LogTemplates(clock, warmup_seconds=0, max_clusters=1)
    templates.observe("api", "disk full", 0.0)
    templates.observe("api", "socket closed by peer", 0.0)
    assert len(templates.drain()) == 2
    templates.observe("api", "disk full", 0.0)  # Drain evicted it and creates it again
    assert templates.drain() == []


def test_hostile_and_huge_bodies_are_bounded_data() -> None:
    clock = FakeClock()
    templates = LogTemplates(clock, warmup_seconds=0, max_chars=64)
    tpl = templates.observe("api", "$(rm -rf /); `reboot` " + "A" * 10_000, 0.0)
    assert tpl is not None
    assert len(tpl.text) <= 64
    assert templates.observe("api", "   ", 0.0) is None
    assert templates.observe("api", AnyValue(bytes_value=b"\x00\xff"), 0.0) is None


def test_max_services_forgets_the_least_recent() -> None:
    clock = FakeClock()
    templates = LogTemplates(clock, warmup_seconds=0, max_services=2)
    for node in ("a", "b", "c"):
        templates.observe(node, "boom", 0.0)
    assert {t.node for t in templates.templates()} == {"b", "c"}
    assert templates.forgotten_services == 1


def _logs(service: str, *bodies: tuple[int, str], t0: int = 0) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    records = rl.scope_logs.add().log_records
    for i, (severity, body) in enumerate(bodies):
        t = (t0 + i) * 1_000_000_000
        records.add(time_unix_nano=t, severity_number=severity).body.string_value = body
    return request


def test_log_rates_feed_only_new_error_bodies_to_the_miner() -> None:
    clock = FakeClock()
    templates = LogTemplates(clock, warmup_seconds=10)
    logs = LogRates(SeriesStore(clock), templates=templates)
    logs.ingest_logs(_logs("api", (17, "boom"), (9, "just info")), clock.now())
    clock.advance(20)
    request = _logs("api", (9, "info is never mined"), (18, "payment declined"), t0=1000)
    logs.ingest_logs(request, clock.now())
    logs.ingest_logs(request, clock.now())  # a retried export
    [signal] = templates.drain()
    assert (signal.node, signal.onset) == ("api", 1001.0)
    assert {(t.text, t.count) for t in templates.templates("api")} == {
        ("boom", 1),
        ("payment declined", 1),
    }
