"""Fuse several detectors into one, keeping each member's contribution for explanation.

Every member scores every series; member i contributes ``w_i * s_i`` (weights in [0, 1]).
Two fusions:

- ``max`` (default): score = max_i w_i s_i. The strongest single piece of evidence decides;
  agreeing weak members do not add up, so the false-alarm rate is at most the sum of the
  members' rates, and a member that is silent on a series (trend without a capacity,
  threshold without bounds) costs nothing.
- ``noisy_or``: score = 1 - prod_i (1 - w_i s_i). Treats members as independent witnesses:
  two members at 0.6 give 0.84. Higher recall on subtle faults, more false alarms.

The direction and baseline are those of the member with the largest contribution. The result
is an :class:`EnsembleScores` (a :class:`~selfheal_kg.detect.base.Scores` with a
``contributions`` mapping member → weighted scores), so the tracker and the server use the
ensemble unchanged and an explanation can name the member that fired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from selfheal_kg.detect.base import Detector, FloatArray, Scores, as_values
from selfheal_kg.detect.cusum import Cusum
from selfheal_kg.detect.robust_z import RobustZ
from selfheal_kg.detect.seasonal import Seasonal
from selfheal_kg.detect.threshold import Threshold
from selfheal_kg.detect.trend import Trend

Fusion = Literal["max", "noisy_or"]

#: Member weights; cusum a little below 1 because it is the most sensitive member and its
#: alarms on slow drifts are the most often wrong on the Merlion development set.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "robust_z": 1.0,
    "cusum": 0.9,
    "seasonal": 1.0,
    "trend": 1.0,
    "threshold": 1.0,
}


def default_members() -> dict[str, Detector]:
    """Return the default members (seasonal without its own robust z fallback)."""
    factories: dict[str, Callable[[], Detector]] = {
        "robust_z": RobustZ,
        "cusum": Cusum,
        "seasonal": lambda: Seasonal(fallback=False),
        "trend": Trend,
        "threshold": Threshold,
    }
    return {name: make() for name, make in factories.items()}


@dataclass(frozen=True, slots=True)
class EnsembleScores(Scores):
    """Fused scores plus each member's weighted score, aligned with the input."""

    contributions: Mapping[str, FloatArray] = field(default_factory=dict)


class Ensemble:
    """A detector that fuses its members' scores.

    Args:
        members: name → detector (default: :func:`default_members`).
        weights: name → weight in [0, 1] (default :data:`DEFAULT_WEIGHTS`, else 1).
        fusion: ``max`` or ``noisy_or`` (see the module docstring).
    """

    name = "ensemble"

    def __init__(
        self,
        members: Mapping[str, Detector] | None = None,
        weights: Mapping[str, float] | None = None,
        fusion: Fusion = "max",
    ) -> None:
        self.members = dict(members) if members is not None else default_members()
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        chosen = weights if weights is not None else DEFAULT_WEIGHTS
        self.weights = {m: float(chosen.get(m, 1.0)) for m in self.members}
        if any(not 0 <= w <= 1 for w in self.weights.values()):
            raise ValueError("member weights must be in [0, 1]")
        if fusion not in ("max", "noisy_or"):
            raise ValueError(f"unknown fusion {fusion!r} (known: max, noisy_or)")
        self.fusion: Fusion = fusion

    def forget(self, series: str) -> None:
        """Make every member forget ``series``."""
        for det in self.members.values():
            det.forget(series)

    def update(self, t: float, series: Sequence[str], values: FloatArray) -> EnsembleScores:
        """Update every member; return the fused scores with each member's contribution."""
        vals = as_values(values, len(series))
        results = {m: det.update(t, series, vals) for m, det in self.members.items()}
        contrib = {m: self.weights[m] * r.score for m, r in results.items()}
        stack = np.vstack(list(contrib.values()))
        fused = stack.max(axis=0) if self.fusion == "max" else 1.0 - np.prod(1.0 - stack, axis=0)
        best = stack.argmax(axis=0)
        cols = np.arange(len(series))
        direction = np.vstack([r.direction for r in results.values()])[best, cols]
        baseline = np.vstack([r.baseline for r in results.values()])[best, cols]
        return EnsembleScores(
            score=np.clip(fused, 0.0, 1.0),
            direction=direction,
            baseline=baseline,
            contributions=contrib,
        )


def explain(scores: EnsembleScores, i: int) -> dict[str, float]:
    """Return member → weighted score for input position ``i``, strongest first."""
    pairs = sorted(((m, float(c[i])) for m, c in scores.contributions.items()),
                   key=lambda p: -p[1])
    return dict(pairs)
