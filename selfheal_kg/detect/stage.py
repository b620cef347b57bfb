"""The detection stage of the pipeline: one tick's derived points → opened and cleared signals.

Every series goes through the main detector (the server's default) and its hysteresis tracker;
saturating resources (``*.utilization``) also go through the trend detector, which predicts
the time to exhaustion, with a tracker of its own.

A series that goes silent (no point for ``silent_after`` seconds: an instance replaced by a
new one, a scaled-in replica, a stream that stopped) cannot clear its signal by itself: its
open signals are closed, so nothing waits on a measurement that will never come. The
detectors forget it too: if the same series comes back (a retired instance's name given to a
new one by a later scale-out, a service back after a long outage), it learns a new baseline
instead of being judged against a level from before it went away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from selfheal_kg.detect.base import Scores
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.detect.trend import RATIO_SUFFIXES
from selfheal_kg.model import DerivedPoint, Signal


class DetectorLike(Protocol):
    """A vectorised streaming detector."""

    name: str

    def update(self, t: float, series: Sequence[str], values: np.ndarray) -> Scores: ...

    def forget(self, series: str) -> None: ...


class TrackerLike(Protocol):
    """Hysteresis over detector scores."""

    def update(
        self,
        t: float,
        series: Sequence[str],
        nodes: Sequence[str],
        metrics: Sequence[str],
        scores: Scores,
        values: np.ndarray,
    ) -> tuple[list[Signal], list[Signal]]: ...

    def close(self, series: str) -> Signal | None: ...


class DetectStage:
    """Runs the detectors over the newest point of each series, once per tick."""

    def __init__(
        self,
        detector: DetectorLike,
        tracker: TrackerLike,
        trend: DetectorLike | None = None,
        silent_after: float = 30.0,
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.trend = trend
        self.trend_tracker = SignalTracker(detector="trend")
        self.silent_after = silent_after
        self._last: dict[str, float] = {}

    def run(self, points: Sequence[DerivedPoint], now: float) -> tuple[list[Signal], list[Signal]]:
        """Return the signals opened and cleared by this tick's points."""
        latest: dict[str, DerivedPoint] = {}
        for p in points:
            latest[p.series] = p
            self._last[p.series] = now
        silent = self._silent(now)
        if not latest:
            return [], silent
        pts = list(latest.values())
        opened, cleared = _detect(self.detector, self.tracker, pts, now)
        resources = [p for p in pts if p.metric.endswith(RATIO_SUFFIXES)]
        if self.trend is not None and resources:
            more = _detect(self.trend, self.trend_tracker, resources, now)
            opened, cleared = opened + more[0], cleared + more[1]
        return opened, cleared + silent

    def _silent(self, now: float) -> list[Signal]:
        """Close the signals of the series silent for ``silent_after`` seconds."""
        gone = [s for s, t in self._last.items() if now - t > self.silent_after]
        out: list[Signal] = []
        for series in gone:
            del self._last[series]
            for det in (self.detector, self.trend):
                if det is not None:
                    det.forget(series)
            for tracker in (self.tracker, self.trend_tracker):
                closed = tracker.close(series)
                if closed is not None:
                    out.append(closed)
        return out


def _detect(
    detector: DetectorLike, tracker: TrackerLike, pts: list[DerivedPoint], now: float
) -> tuple[list[Signal], list[Signal]]:
    ids = [p.series for p in pts]
    values = np.array([p.value for p in pts], dtype=float)
    scores = detector.update(now, ids, values)
    return tracker.update(now, ids, [p.node for p in pts], [p.metric for p in pts], scores, values)
