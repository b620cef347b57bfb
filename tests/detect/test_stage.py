from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfheal_kg.detect.base import Scores
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.detect.stage import DetectStage
from selfheal_kg.model import DerivedPoint


class Recording:
    """A detector that scores nothing and records which series it saw."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

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
