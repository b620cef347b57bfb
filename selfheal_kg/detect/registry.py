"""The built-in detectors, in one explicit dict, and the defaults the server uses."""

from __future__ import annotations

from collections.abc import Callable

from selfheal_kg.detect.base import Detector
from selfheal_kg.detect.cusum import Cusum
from selfheal_kg.detect.ensemble import Ensemble
from selfheal_kg.detect.ewma import Ewma
from selfheal_kg.detect.hysteresis import SignalTracker
from selfheal_kg.detect.robust_z import RobustZ
from selfheal_kg.detect.seasonal import Seasonal
from selfheal_kg.detect.threshold import Threshold
from selfheal_kg.detect.trend import Trend
from selfheal_kg.errors import ConfigError

DEFAULT_DETECTOR = "robust_z"

DETECTORS: dict[str, Callable[[], Detector]] = {
    "robust_z": RobustZ,
    "ewma": Ewma,
    "cusum": Cusum,
    "seasonal": Seasonal,
    "trend": Trend,
    "threshold": Threshold,
    "ensemble": Ensemble,
}


def make_detector(name: str = DEFAULT_DETECTOR) -> Detector:
    """Return a new detector with its default parameters.

    Raises:
        ConfigError: ``name`` is not a known detector.
    """
    factory = DETECTORS.get(name)
    if factory is None:
        known = ", ".join(sorted(DETECTORS))
        raise ConfigError(f"unknown detector {name!r} (known: {known})")
    return factory()


def make_tracker(detector: str = DEFAULT_DETECTOR) -> SignalTracker:
    """Return a signal tracker with the server's default hysteresis levels."""
    return SignalTracker(detector=detector)
