from __future__ import annotations

import io

import numpy as np
import pytest

from selfheal_kg.detect.batch import Point, detect_points, parse_time, read_points
from selfheal_kg.errors import FileLoadError


def series(values: np.ndarray) -> list[Point]:
    return [Point(300.0 * i, float(v)) for i, v in enumerate(values)]


def first_alarm(values: np.ndarray) -> int | None:
    for i, row in enumerate(detect_points(iter(series(values)))):
        if row.anomaly:
            return i
    return None


def test_level_shift_fires_within_bounded_delay() -> None:
    rng = np.random.default_rng(5)
    vals = rng.normal(10, 1, 300)
    vals[200:] += 8
    alarm = first_alarm(vals)
    assert alarm is not None and 200 <= alarm <= 205


def test_spike_fires() -> None:
    rng = np.random.default_rng(6)
    vals = rng.normal(10, 1, 200)
    vals[150:153] = 40
    alarm = first_alarm(vals)
    assert alarm is not None and 150 <= alarm <= 152


def test_seasonal_sine_without_anomaly_stays_mostly_quiet() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(3000)
    vals = 10 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 1, t.size)
    flags = [r.anomaly for r in detect_points(iter(series(vals)))]
    assert np.mean(flags) < 0.02


def test_streaming_prefix_property() -> None:
    rng = np.random.default_rng(8)
    vals = rng.normal(0, 1, 120)
    vals[100] = 9
    full = list(detect_points(iter(series(vals))))
    prefix = list(detect_points(iter(series(vals[:101]))))
    assert full[:101] == prefix


def test_parse_time_accepts_epoch_and_iso() -> None:
    assert parse_time("1700000000") == 1_700_000_000.0
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert parse_time("2023-11-14T22:13:20") == 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "line"),
    [("t,v\n1,2\nyesterday,3\n", 3), ("t,v\n1,abc\n", 2), ("t\n", 1), ("t,v\n1\n", 2)],
)
def test_bad_rows_name_the_line(text: str, line: int) -> None:
    with pytest.raises(FileLoadError) as err:
        list(read_points("in.csv", io.StringIO(text)))
    assert err.value.line == line and err.value.file == "in.csv"


def test_empty_value_is_missing() -> None:
    (p,) = list(read_points("x", io.StringIO("timestamp,v\n5,\n")))
    assert p.t == 5.0 and np.isnan(p.value)
