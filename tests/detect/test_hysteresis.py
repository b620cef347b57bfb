from __future__ import annotations

import numpy as np
import pytest

from selfheal_kg.detect.base import Scores
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.model import Signal


def step(tr: SignalTracker, t: float, score: float) -> tuple[list[Signal], list[Signal]]:
    s = Scores(np.array([score]), np.array([1], dtype=np.int8), np.array([1.0]))
    return tr.update(t, ["svc/latency"], ["svc"], ["latency"], s, np.array([5.0]))


def run(tr: SignalTracker, scores: list[float]) -> tuple[list[Signal], list[Signal]]:
    opened: list[Signal] = []
    cleared: list[Signal] = []
    for t, sc in enumerate(scores):
        o, c = step(tr, float(t), sc)
        opened += o
        cleared += c
    return opened, cleared


def test_oscillation_around_fire_level_gives_one_signal() -> None:
    tr = SignalTracker()
    opened, cleared = run(tr, [0.0] + [0.75, 0.85] * 20)
    assert len(opened) == 1 and cleared == []
    assert len(tr.active()) == 1


def test_onset_precedes_confirmation_and_id_uses_onset() -> None:
    tr = SignalTracker()
    opened, _ = run(tr, [0.0, 0.0, 0.5, 0.9, 0.6, 0.95])
    (sig,) = opened
    assert sig.onset == 2.0 and sig.detected_at == 5.0
    assert sig.id == "svc/latency@2.0"
    assert (sig.node, sig.metric, sig.detector, sig.direction) == (
        "svc", "latency", "robust_z", "up")


def test_clears_only_after_min_clear_calm_points() -> None:
    tr = SignalTracker()
    opened, cleared = run(tr, [0.9, 0.9, 0.1, 0.1, 0.5, 0.1, 0.1])
    assert len(opened) == 1 and cleared == []
    _, cleared = step(tr, 7.0, 0.0)
    assert len(cleared) == 1 and not cleared[0].active
    assert tr.active() == []


def test_a_single_high_point_does_not_fire() -> None:
    opened, _ = run(SignalTracker(), [0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    assert opened == []


def test_episode_forgotten_when_score_drops_before_confirmation() -> None:
    tr = SignalTracker()
    opened, _ = run(tr, [0.5, 0.9, 0.1, 0.4, 0.9, 0.9])
    assert opened[0].onset == 3.0


def test_a_raised_level_for_one_series_stops_it_firing_and_is_reversible() -> None:
    tr = SignalTracker()
    tr.set_level("svc/latency", 0.9)
    opened, _ = run(tr, [0.0] + [0.85] * 10)
    assert opened == [] and tr.level("svc/latency") == 0.9
    assert tr.level("other") == 0.8
    tr.set_level("svc/latency", None)
    opened, _ = run(tr, [0.85] * 3)
    assert len(opened) == 1


def test_levels_provider_is_followed_and_manual_level_wins() -> None:
    levels: dict[str, float] = {"svc/latency": 0.9}
    tr = SignalTracker(levels=lambda: levels)
    assert run(tr, [0.0] + [0.85] * 5)[0] == []
    levels.clear()  # the adjustment was reverted
    assert len(run(tr, [0.85] * 3)[0]) == 1
    tr2 = SignalTracker(levels=lambda: {"svc/latency": 0.9})
    tr2.set_level("svc/latency", 0.82)
    assert len(run(tr2, [0.0, 0.85, 0.85])[0]) == 1


def test_a_level_outside_the_hysteresis_band_is_refused() -> None:
    tr = SignalTracker()
    with pytest.raises(ValueError, match="svc/latency"):
        tr.set_level("svc/latency", 0.2)
    with pytest.raises(ValueError, match="must be in"):
        SignalTracker(levels=lambda: {"x": 1.5}).update(
            0.0, ["x"], ["n"], ["m"],
            Scores(np.array([0.1]), np.array([1], dtype=np.int8), np.array([1.0])),
            np.array([1.0]),
        )
