from __future__ import annotations

import numpy as np

from selfheal_kg.detect.ewma import Ewma


def test_ewma_flags_a_spike_not_the_noise() -> None:
    rng = np.random.default_rng(4)
    det = Ewma()
    vals = rng.normal(0, 1, 300)
    vals[250] = 20.0
    scores = [det.update(float(i), ["s"], np.array([v])).score[0] for i, v in enumerate(vals)]
    assert scores[250] == 1.0
    assert max(scores[20:250]) < 0.8
