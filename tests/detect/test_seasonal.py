from __future__ import annotations

import numpy as np

from selfheal_kg.detect.seasonal import Seasonal

PERIOD = 48


def sine(cycles: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(cycles * PERIOD)
    return 10 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 0.5, t.size)


def feed(det: Seasonal, vals: np.ndarray) -> np.ndarray:
    return np.array([det.update(300.0 * i, ["s"], np.array([v])).score[0]
                     for i, v in enumerate(vals)])


def test_deviation_from_the_seasonal_shape_fires() -> None:
    vals = sine(8, 1)
    at = 6 * PERIOD + PERIOD // 4  # the peak of the cycle ...
    vals[at: at + 3] = -10.0  # ... shows the trough: within the overall range, wrong phase
    scores = feed(Seasonal(period=PERIOD), vals)
    assert scores[at] == 1.0
    assert scores[2 * PERIOD: at].max() < 0.8


def test_clean_seasonal_series_stays_quiet() -> None:
    scores = feed(Seasonal(period=PERIOD), sine(20, 2))
    assert (scores[2 * PERIOD:] >= 0.8).mean() < 0.005


def test_short_history_falls_back_to_robust_z_or_to_zero() -> None:
    vals = np.zeros(30)
    vals[:25] = np.random.default_rng(3).normal(0, 1, 25)
    vals[25] = 50.0
    assert feed(Seasonal(period=PERIOD), vals)[25] == 1.0
    assert feed(Seasonal(period=PERIOD, fallback=False), vals)[25] == 0.0


def test_phase_follows_time_not_the_update_count() -> None:
    det = Seasonal(period=PERIOD, step=300.0, fallback=False)
    vals = sine(4, 4)
    for i, v in enumerate(vals):
        det.update(300.0 * i, ["s"], np.array([v]))
    # a missed update (one step skipped): the next value still matches its own phase
    t = len(vals) + 1
    s = det.update(300.0 * t, ["s"], np.array([10 * np.sin(2 * np.pi * t / PERIOD)]))
    assert s.score[0] == 0.0
