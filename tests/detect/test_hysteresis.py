from __future__ import annotations

import numpy as np

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
