from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfheal_kg.detect.base import Scores
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.detect.robust_z import RobustZ
from selfheal_kg.detect.stage import DetectStage
from selfheal_kg.model import DerivedPoint, Signal


class Recording:
    """A detector that scores nothing and records which series it saw."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []
        self.forgotten: list[str] = []

    def forget(self, series: str) -> None:
        self.forgotten.append(series)

    def update(self, t: float, series: Sequence[str], values: np.ndarray) -> Scores:
        self.seen.append(list(series))
        zeros = np.zeros(len(series))
        return Scores(zeros, np.zeros(len(series), dtype=np.int8), zeros)


def test_newest_point_per_series_and_trend_only_for_resources() -> None:
    main, trend = Recording(), Recording()
    stage = DetectStage(main, SignalTracker(), trend)
    pts = [
        DerivedPoint("a|rate", "a", "http.server.request.rate", 1.0, 5.0),
        DerivedPoint("a|rate", "a", "http.server.request.rate", 2.0, 6.0),
        DerivedPoint("a|mem", "a", "process.memory.utilization", 2.0, 0.4),
    ]
    assert stage.run(pts, 2.0) == ([], [])
    assert main.seen == [["a|rate", "a|mem"]]
    assert trend.seen == [["a|mem"]]
    assert stage.run([], 3.0) == ([], [])
    assert len(main.seen) == 1


class Alarmed:
    """A detector that scores every point as a strong upward deviation."""

    name = "alarmed"

    def forget(self, series: str) -> None:
        pass

    def update(self, t: float, series: Sequence[str], values: np.ndarray) -> Scores:
        n = len(series)
        return Scores(np.ones(n), np.ones(n, dtype=np.int8), np.zeros(n))


def test_a_signal_of_a_series_gone_silent_is_closed() -> None:
    stage = DetectStage(Alarmed(), SignalTracker(), silent_after=30.0)
    t = 0.0
    opened: list[Signal] = []
    for _ in range(5):  # an instance failing every request
        t += 1.0
        got, _ = stage.run([DerivedPoint("co|http.server.error.ratio|co-2", "co",
                                         "http.server.error.ratio", t, 1.0)], t)
        opened += got
    assert [s.series for s in opened] == ["co|http.server.error.ratio|co-2"]
    # the instance is replaced: its series gets no more points
    _, cleared = stage.run([], t + 10.0)
    assert cleared == []
    _, cleared = stage.run([], t + 31.0)
    assert [(s.series, s.active) for s in cleared] == [("co|http.server.error.ratio|co-2", False)]
    _, cleared = stage.run([], t + 60.0)
    assert cleared == []  # closed once


def test_a_series_back_after_going_silent_learns_a_new_baseline() -> None:
    """A retired instance's name given to a new instance later starts from nothing."""
    stage = DetectStage(RobustZ(), SignalTracker(), silent_after=30.0)
    key = "co|http.server.request.rate|co-3"
    t, opened = 0.0, []
    for k in range(30):  # the first co-3 serves a small share
        t += 1.0
        got, _ = stage.run([DerivedPoint(key, "co", "http.server.request.rate", t,
                                         6.0 + 0.1 * (k % 3))], t)
        opened += got
    assert opened == []
    stage.run([], t + 31.0)  # retired: silent for longer than silent_after
    t += 60.0
    for k in range(30):  # a new co-3, under a heavier load, takes four times that share
        t += 1.0
        got, _ = stage.run([DerivedPoint(key, "co", "http.server.request.rate", t,
                                         24.0 + 0.1 * (k % 3))], t)
        opened += got
    assert opened == [], "judged against the level of the instance that went away"


def test_silent_series_are_forgotten_by_the_detectors() -> None:
    main, trend = Recording(), Recording()
    stage = DetectStage(main, SignalTracker(), trend, silent_after=30.0)
    stage.run([DerivedPoint("a|mem", "a", "process.memory.utilization", 1.0, 0.4)], 1.0)
    stage.run([], 20.0)
    assert main.forgotten == trend.forgotten == []
    stage.run([], 32.0)
    assert main.forgotten == trend.forgotten == ["a|mem"]
