from __future__ import annotations

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
