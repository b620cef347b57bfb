"""The PostgreSQL statistics poller: derivation, and a real server when SELFHEAL_PG_DSN is set."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from selfheal_kg.clock import FakeClock
from selfheal_kg.detect.registry import make_detector, make_tracker
from selfheal_kg.detect.stage import DetectStage
from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor.dbstats import (
    HIT_RATIO,
    TEMP_RATE,
    DbStatsPoller,
    Reading,
    derive,
    is_postgres_dsn,
)


def _values(points: list[DerivedPoint]) -> dict[str, float]:
    return {p.metric: p.value for p in points}


def test_interval_values_from_counters() -> None:
    before = Reading(100.0, blks_hit=1000, blks_read=10, temp_files=1, temp_bytes=4096)
    after = Reading(110.0, blks_hit=1900, blks_read=110, temp_files=3, temp_bytes=4096 + 81920)
    points = derive("shop-db", before, after)
    assert _values(points) == {HIT_RATIO: 0.9, TEMP_RATE: 8192.0}
    assert {(p.series, p.node, p.t) for p in points} == {
        ("shop-db|db.cache.hit.ratio", "shop-db", 110.0),
        ("shop-db|db.temp.bytes.rate", "shop-db", 110.0),
    }


def test_first_reading_and_untouched_blocks() -> None:
    first = Reading(100.0, 5, 5, 0, 0)
    assert derive("db", None, first) == []
    idle = Reading(105.0, 5, 5, 0, 0)
    assert _values(derive("db", first, idle)) == {TEMP_RATE: 0.0}  # no blocks: no ratio


@pytest.mark.parametrize(
    "after",
    [
        Reading(110.0, 10, 1, 0, 0),  # counters went down: reset without a timestamp change
        Reading(110.0, 5000, 50, 2, 8192, stats_reset=105.0),  # reset time changed
        Reading(100.0, 5000, 50, 2, 8192),  # no time passed
    ],
)
def test_reset_or_empty_interval_only_sets_the_baseline(after: Reading) -> None:
    before = Reading(100.0, 1000, 10, 1, 4096)
    assert derive("db", before, after) == []


def test_a_sustained_spill_opens_an_upward_signal_the_rule_reads() -> None:
    stage = DetectStage(make_detector(), make_tracker())
    previous: Reading | None = None
    opened = []
    for i in range(30):
        spilled = 0 if i < 20 else (i - 19) * 50_000_000  # 5 MB/s from poll 20 on
        reading = Reading(1000.0 + 10 * i, 10_000 * i + (i % 3), 10 * i, i // 20, spilled)
        points = derive("inventory-db", previous, reading)
        previous = reading
        opened += stage.run(points, reading.t)[0]
    assert [(s.node, s.metric, s.direction) for s in opened] == [
        ("inventory-db", TEMP_RATE, "up")]


def test_sqlite_and_unreachable_databases_are_reported_not_raised() -> None:
    assert not is_postgres_dsn("/var/lib/shop/inventory.db")
    assert is_postgres_dsn("host=127.0.0.1 port=1 dbname=x")
    poller = DbStatsPoller(
        {"lite": "/tmp/inventory.db", "gone": "host=127.0.0.1 port=1 dbname=x user=x"},
        FakeClock(),
        connect_timeout=1,
    )
    assert poller.skipped == ("lite",)
    assert poller.poll() == []
    assert set(poller.errors) == {"gone"}
    assert "OperationalError" in poller.errors["gone"]
    poller.close()


# -- a real PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def poller(pg_dsn: str) -> Iterator[tuple[DbStatsPoller, FakeClock]]:
    clock = FakeClock()
    p = DbStatsPoller({"shop-db": pg_dsn}, clock)
    yield p, clock
    p.close()


def _spill_a_sort(pg_dsn: str) -> None:
    """Sort more than a 64kB work_mem holds (it spills to a temp file); publish the counts."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET work_mem = '64kB'")
        conn.execute("SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g"
                     " ORDER BY g DESC OFFSET 1) s")
        conn.execute("SELECT pg_stat_force_next_flush()")  # published before this returns


@pytest.mark.postgres
def test_real_sort_spill_gives_a_temp_rate_and_a_hit_ratio(
    pg_dsn: str, poller: tuple[DbStatsPoller, FakeClock]
) -> None:
    p, clock = poller
    assert p.poll() == []  # first reading: the baseline
    _spill_a_sort(pg_dsn)
    clock.advance(10.0)
    values = _values(p.poll())
    assert not p.errors
    # a 200k-int sort spills well over a megabyte: > 100 kB/s over 10 s
    assert values[TEMP_RATE] > 100_000
    assert 0.0 <= values[HIT_RATIO] <= 1.0


@pytest.mark.postgres
def test_poll_due_waits_for_the_period(pg_dsn: str) -> None:
    clock = FakeClock()
    p = DbStatsPoller({"shop-db": pg_dsn, "lite": "/tmp/x.db"}, clock, period=10.0)
    assert p.targets == ("shop-db",)
    assert p.poll_due() == []  # due at once: the baseline reading
    clock.advance(5.0)
    assert p.poll_due() == []  # not due yet
    clock.advance(5.0)
    (point,) = [q for q in p.poll_due() if q.metric == TEMP_RATE]
    assert point.t == clock.now()
    p.close()


@pytest.mark.postgres
def test_real_reconnect_after_a_lost_connection(
    pg_dsn: str, poller: tuple[DbStatsPoller, FakeClock]
) -> None:
    p, clock = poller
    p.poll()
    p.close()  # as if the server dropped us: the next poll connects again
    clock.advance(5.0)
    values = _values(p.poll())
    assert not p.errors and TEMP_RATE in values


@pytest.mark.postgres
def test_real_stats_reset_only_sets_the_baseline(
    pg_dsn: str, poller: tuple[DbStatsPoller, FakeClock]
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        allowed = conn.execute("SELECT has_function_privilege('pg_stat_reset()', 'EXECUTE')"
                               ).fetchone()
        if not (allowed and allowed[0]):
            pytest.skip("the test role may not run pg_stat_reset() (superuser or a GRANT needed)")
        p, clock = poller
        p.poll()
        _spill_a_sort(pg_dsn)
        conn.execute("SELECT pg_stat_reset()")
        clock.advance(10.0)
        assert p.poll() == []  # the reset interval yields nothing, not a negative rate
        clock.advance(10.0)
        assert TEMP_RATE in _values(p.poll())
