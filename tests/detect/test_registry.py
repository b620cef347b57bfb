from __future__ import annotations

import numpy as np
import pytest

from selfheal_kg.detect.registry import DEFAULT_DETECTOR, DETECTORS, make_detector
from selfheal_kg.errors import ConfigError


def test_every_registered_detector_builds_with_its_name() -> None:
    for name in DETECTORS:
        assert make_detector(name).name == name
    assert make_detector().name == DEFAULT_DETECTOR == "robust_z"


def test_unknown_detector_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        make_detector("nope")


@pytest.mark.parametrize("name", ["robust_z", "ewma", "cusum", "seasonal", "ensemble"])
def test_a_forgotten_series_warms_up_again(name: str) -> None:
    """After ``forget`` a series scores nothing until it has a new history."""
    det = make_detector(name)
    level = np.array([10.0])
    for k in range(200):
        det.update(float(k), ["s"], level + 0.01 * (k % 3))
    assert det.update(200.0, ["s"], np.array([100.0])).score[0] > 0.5
    det.forget("s")
    assert det.update(201.0, ["s"], np.array([100.0])).score[0] == 0.0
    det.forget("never-seen")  # nothing to forget: no error
