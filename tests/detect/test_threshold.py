from __future__ import annotations

import numpy as np
import pytest

from selfheal_kg.detect.threshold import Threshold


def test_static_bounds_score_outside_only() -> None:
    det = Threshold(bounds={"q/depth": (None, 100.0), "svc/rate": (1.0, None)})
    s = det.update(0.0, ["q/depth", "svc/rate", "other"], np.array([150.0, 0.5, 1e9]))
    assert s.score.tolist() == [1.0, 1.0, 0.0]
    assert s.direction.tolist() == [1, -1, 0]
    assert s.baseline[0] == 100.0
    assert Threshold(bounds={"q": (0.0, 10.0)}).update(0, ["q"], np.array([5.0])).score[0] == 0


def test_fast_burn_pages_and_stops_soon_after_the_errors() -> None:
    det = Threshold(step=60.0)  # default SLO 99 % on *error.ratio
    ids = ["svc/http.server.error.ratio"]
    scores = [det.update(60.0 * i, ids, np.array([0.001])).score[0] for i in range(120)]
    assert max(scores) == 0.0
    # 20 % errors = burn 20x: the 5-minute window passes 14.4x at once, the hour after ~45 min
    burning = [det.update(60.0 * (120 + i), ids, np.array([0.2])).score[0] for i in range(60)]
    first = int(np.flatnonzero(np.array(burning) >= 1.0)[0])
    assert 40 <= first <= 50
    after = [det.update(60.0 * (180 + i), ids, np.array([0.0])).score[0] for i in range(35)]
    assert after[9] == 1.0  # 5 min clear, but 30 min still burns > 6x with 6 h > 6x
    assert after[-1] < 0.8  # both short windows cleared


def test_slow_burn_pages_at_six_times() -> None:
    det = Threshold(step=300.0)
    ids = ["svc/http.server.error.ratio"]
    s = [det.update(300.0 * i, ids, np.array([0.08])).score[0] for i in range(80)]
    assert s[-1] == 1.0  # 8x: below the fast rule's 14.4x, above the slow rule's 6x


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="lower"):
        Threshold(bounds={"x": (5.0, 1.0)})
    det = Threshold(slo=lambda s: 1.5)
    with pytest.raises(ValueError, match="SLO target"):
        det.update(0.0, ["x"], np.array([0.1]))
