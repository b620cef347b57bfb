from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from selfheal_kg.detect.batch import Point, detect_file, detect_points
from selfheal_kg.detect.cusum import Cusum
from selfheal_kg.detect.ensemble import Ensemble, EnsembleScores, explain
from selfheal_kg.detect.registry import DETECTORS, make_detector, make_tracker
from selfheal_kg.detect.robust_z import RobustZ


def alarms(values: np.ndarray, detector: str) -> np.ndarray:
    pts = [Point(300.0 * i, float(v)) for i, v in enumerate(values)]
    return np.array([r.anomaly for r in detect_points(iter(pts), detector)])


def test_spike_and_level_shift_fire_with_bounded_delay() -> None:
    rng = np.random.default_rng(21)
    vals = rng.normal(10, 1, 400)
    vals[200:203] = 40.0
    vals[300:] += 4.0
    flags = alarms(vals, "ensemble")
    assert flags[200:203].any()
    assert flags[300:310].any()


def test_contributions_name_the_member_that_fired() -> None:
    ens = Ensemble({"robust_z": RobustZ(), "cusum": Cusum()}, weights={"cusum": 0.5})
    rng = np.random.default_rng(22)
    for t in range(40):
        ens.update(float(t), ["a", "b"], rng.normal(0, 1, 2))
    s = ens.update(40.0, ["a", "b"], np.array([30.0, 0.0]))
    assert isinstance(s, EnsembleScores) and s.score[0] == 1.0 and s.direction[0] == 1
    why = explain(s, 0)
    assert next(iter(why)) == "robust_z" and why["cusum"] <= 0.5


def test_noisy_or_adds_up_agreeing_members() -> None:
    class Fixed:
        def __init__(self, name: str, value: float) -> None:
            self.name, self.value = name, value

        def forget(self, series: str) -> None:
            pass

        def update(self, t: float, series: list[str], values: np.ndarray) -> EnsembleScores:
            n = len(series)
            return EnsembleScores(np.full(n, self.value), np.ones(n, dtype=np.int8),
                                  np.zeros(n))

    members = {"a": Fixed("a", 0.6), "b": Fixed("b", 0.6)}
    assert Ensemble(members, fusion="max").update(0, ["s"], np.zeros(1)).score[0] == 0.6
    assert Ensemble(members, fusion="noisy_or").update(
        0, ["s"], np.zeros(1)).score[0] == pytest.approx(0.84)
    with pytest.raises(ValueError, match="fusion"):
        Ensemble(members, fusion="mean")  # type: ignore[arg-type]


def test_oscillating_fault_gives_one_signal_through_the_tracker() -> None:
    det, tracker = make_detector("ensemble"), make_tracker("ensemble")
    rng = np.random.default_rng(23)
    opened = []
    for t in range(300):
        v = rng.normal(0, 1) + (25.0 if t >= 200 and t % 2 == 0 else 0.0)
        s = det.update(float(t), ["s"], np.array([v]))
        o, _ = tracker.update(float(t), ["s"], ["n"], ["m"], s, np.array([v]))
        opened += o
    assert len(opened) == 1 and opened[0].detector == "ensemble"


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_runs_through_detect_and_scores_1000_series(
    name: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(24)
    text = "timestamp,value\n" + "".join(f"{300 * i},{v}\n" for i, v in
                                          enumerate(rng.normal(5, 1, 50)))
    path = tmp_path / "in.csv"
    path.write_text(text)
    assert detect_file(path, io.StringIO(), name) == 50
    det = make_detector(name)
    ids = [f"svc{i}/http.server.error.ratio" for i in range(1000)]
    for t in range(20):
        s = det.update(300.0 * t, ids, rng.uniform(0, 0.001, 1000))
    assert s.score.shape == (1000,) and ((s.score >= 0) & (s.score <= 1)).all()
