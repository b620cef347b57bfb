"""The users' load: a steady rate, or a diurnal cycle around it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from selfheal_kg.demo.load import LoadGenerator, LoadPattern
from selfheal_kg.demo.shop import Shop


def test_a_steady_load_keeps_its_rate() -> None:
    pattern = LoadPattern()
    assert [pattern.rate_at(20.0, t) for t in (0.0, 150.0, 450.0, 1e6)] == [20.0] * 4


def test_a_diurnal_load_rises_to_its_peak_falls_to_its_trough_and_repeats() -> None:
    pattern = LoadPattern("diurnal")  # a 600 s day, amplitude 0.5
    assert pattern.rate_at(20.0, 0.0) == 20.0
    assert pattern.rate_at(20.0, 150.0) == pytest.approx(30.0)  # the day's peak
    assert pattern.rate_at(20.0, 300.0) == pytest.approx(20.0)
    assert pattern.rate_at(20.0, 450.0) == pytest.approx(10.0)  # the night
    assert pattern.rate_at(20.0, 750.0) == pytest.approx(30.0)  # the next day
    short = LoadPattern("diurnal", period=60.0, amplitude=0.2)
    assert short.rate_at(10.0, 15.0) == pytest.approx(12.0)
    rates = [short.rate_at(10.0, t / 10) for t in range(600)]
    assert min(rates) == pytest.approx(8.0) and sum(rates) / len(rates) == pytest.approx(10.0)
    assert all(math.isfinite(r) and r > 0 for r in rates)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"kind": "weekly"}, "load pattern"),
        ({"kind": "diurnal", "period": 0.0}, "period"),
        ({"kind": "diurnal", "amplitude": 1.0}, "amplitude"),
        ({"kind": "diurnal", "amplitude": -0.1}, "amplitude"),
    ],
)
def test_bad_patterns_are_refused_naming_the_problem(
    kwargs: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        LoadPattern(**kwargs)  # type: ignore[arg-type]


def test_the_shop_and_the_generator_carry_the_pattern(tmp_path: Path) -> None:
    shop = Shop("http://127.0.0.1:9", tmp_path, load_pattern="diurnal", load_period=120.0)
    assert shop.load_pattern == LoadPattern("diurnal", 120.0)
    with pytest.raises(ValueError, match="load pattern"):
        Shop("http://127.0.0.1:9", tmp_path, load_pattern="bursty")
    load = LoadGenerator("http://127.0.0.1:9/", rate=10.0, pattern=LoadPattern("diurnal"))
    assert load.current_rate() == 10.0, "not started: the cycle is at its start"
    assert LoadGenerator("http://127.0.0.1:9/").pattern == LoadPattern("steady")


def test_start_load_overrides_the_shops_pattern(tmp_path: Path) -> None:
    shop = Shop("http://127.0.0.1:9", tmp_path, load_pattern="diurnal", load_period=120.0)
    load = shop.start_load(1.0, load_pattern="steady")
    try:
        assert load.pattern == LoadPattern("steady", 120.0)
        assert shop.start_load(1.0).pattern == LoadPattern("diurnal", 120.0)
    finally:
        shop.stop_load()
