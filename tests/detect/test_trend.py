from __future__ import annotations

import numpy as np
import pytest

from selfheal_kg.detect.trend import Trend, ratio_capacity

IDS = ["host/system.cpu.utilization", "svc/latency"]


def test_rising_utilisation_reports_time_to_exhaustion_and_fires() -> None:
    det = Trend(step=60.0)
    rng = np.random.default_rng(5)
    # 0.3 -> 1.0 at 0.005 per minute
    for i in range(60):
        util = 0.3 + 0.005 * i + rng.normal(0, 0.002)
        s = det.update(60.0 * i, IDS, np.array([util, 0.2 + 0.01 * i]))
    tte = det.time_to_exhaustion([*IDS, "unknown"])
    remaining = (1.0 - (0.3 + 0.005 * 59)) / 0.005 * 60
    assert tte[0] == pytest.approx(remaining, rel=0.1)
    assert np.isnan(tte[1]) and np.isnan(tte[2])  # no capacity / never seen
    assert 0.0 < s.score[0] < 1.0 and s.score[1] == 0.0  # ~1.35 h: between 1 h and 6 h
    for i in range(60, 90):
        s = det.update(60.0 * i, IDS, np.array([0.3 + 0.005 * i, 0.0]))
    assert s.score[0] == 1.0 and s.direction[0] == 1


def test_flat_noisy_utilisation_is_not_a_trend() -> None:
    det = Trend(step=15.0)
    rng = np.random.default_rng(6)
    scores = [det.update(15.0 * i, IDS[:1], np.array([0.6 + rng.normal(0, 0.02)])).score[0]
              for i in range(500)]
    assert max(scores) < 0.8


def test_capacity_rule_and_parameter_checks() -> None:
    assert ratio_capacity("h/system.memory.utilization") == 1.0
    assert ratio_capacity("svc/http.server.request.rate") is None
    with pytest.raises(ValueError, match="horizon"):
        Trend(horizon=10.0, far=5.0)
    with pytest.raises(ValueError, match="min_points"):
        Trend(window=60, min_points=20)
