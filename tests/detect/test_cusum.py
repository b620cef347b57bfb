from __future__ import annotations

import numpy as np

from selfheal_kg.detect.batch import Point, detect_points
from selfheal_kg.detect.cusum import Cusum


def first_alarm(values: np.ndarray, detector: str) -> int | None:
    pts = [Point(300.0 * i, float(v)) for i, v in enumerate(values)]
    for i, row in enumerate(detect_points(iter(pts), detector)):
        if row.anomaly:
            return i
    return None


def test_small_level_shift_fires_within_bounded_delay() -> None:
    rng = np.random.default_rng(11)
    vals = rng.normal(10, 1, 400)
    vals[300:] += 3.0  # 3 sigma: robust z alone would mostly miss it
    alarm = first_alarm(vals, "cusum")
    assert alarm is not None and 300 <= alarm <= 312


def test_downward_shift_has_direction_down_and_resets_after_alarm() -> None:
    rng = np.random.default_rng(12)
    det = Cusum()
    vals = rng.normal(0, 1, 200)
    vals[150:] -= 5
    out = [det.update(float(i), ["s"], np.array([v])) for i, v in enumerate(vals)]
    scores = np.array([o.score[0] for o in out])
    hit = int(np.flatnonzero(scores >= 1.0)[0])
    assert 150 <= hit <= 155 and out[hit].direction[0] == -1
    assert scores[hit + 1] < 1.0  # the sum restarted at 0 after the alarm


def test_clean_noise_stays_quiet() -> None:
    rng = np.random.default_rng(13)
    det = Cusum()
    scores = [det.update(float(i), ["s"], np.array([v])).score[0]
              for i, v in enumerate(rng.normal(5, 2, 3000))]
    assert np.mean(np.array(scores) >= 0.8) < 0.002
