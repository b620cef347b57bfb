from __future__ import annotations

import numpy as np
import pytest

from selfheal_kg.detect.robust_z import RobustZ


def feed(det: RobustZ, values: np.ndarray, series: str = "s") -> np.ndarray:
    return np.array([det.update(float(i), [series], np.array([v])).score[0]
                     for i, v in enumerate(values)])


def test_spike_scores_high_and_point_not_in_own_baseline() -> None:
    rng = np.random.default_rng(1)
    vals = 10 + rng.normal(0, 1, 100)
    vals[80] = 30
    scores = feed(RobustZ(), vals)
    assert scores[80] == 1.0
    assert scores[30:80].max() < 0.8  # past the noisy warm-up (few points, rough MAD)
    assert scores[81:].max() < 0.8  # the spike did not inflate the next baselines' z


def test_clean_noise_stays_quiet() -> None:
    rng = np.random.default_rng(2)
    scores = feed(RobustZ(), rng.normal(5, 2, 2000))
    assert (scores >= 0.8).mean() < 0.005


def test_flat_series_does_not_explode() -> None:
    det = RobustZ()
    scores = feed(det, np.full(50, 100.0))
    assert scores.max() == 0.0
    s = det.update(99.0, ["s"], np.array([100.05]))
    assert s.score[0] == 0.0  # within the 0.1 % relative floor


def test_warm_up_and_missing_values_score_zero() -> None:
    det = RobustZ(min_points=8)
    assert feed(det, np.array([1.0, 50.0, 1.0]))[1] == 0.0
    s = det.update(10.0, ["s"], np.array([np.nan]))
    assert s.score[0] == 0.0 and s.direction[0] == 0 and np.isnan(s.baseline[0])


def test_direction_and_baseline() -> None:
    det = RobustZ()
    feed(det, np.tile([9.0, 10.0, 11.0], 10))
    s = det.update(100.0, ["s", "new"], np.array([0.0, 1.0]))
    assert s.direction.tolist() == [-1, 0]
    assert s.baseline[0] == 10.0
    assert s.score[0] == 1.0


def test_vectorised_thousand_series_in_one_call() -> None:
    rng = np.random.default_rng(3)
    det = RobustZ()
    names = [f"svc{i}" for i in range(1000)]
    for t in range(30):
        det.update(float(t), names, rng.normal(0, 1, 1000))
    vals = rng.normal(0, 1, 1000)
    vals[[7, 500]] = 50.0
    s = det.update(30.0, names, vals)
    assert s.score.shape == (1000,)
    assert s.score[7] == s.score[500] == 1.0
    assert (s.score >= 0.8).sum() <= 10  # single-point noise; the tracker needs 2 such points


def test_duplicate_series_in_one_update_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        RobustZ().update(0.0, ["a", "a"], np.array([1.0, 2.0]))
