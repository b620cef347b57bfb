"""Typed values handed from one pipeline stage to the next.

intake → ``DerivedPoint`` → detectors → ``Signal`` → ``Fact`` → rule engine → ``Firing`` /
``Diagnosis`` → RCA → ``RootCause`` → decision → ``Decision`` → action → ``StepResult`` →
verification → ``Outcome``. Every value is frozen; a stage never reaches back into an earlier one.
Times are seconds since the epoch (floats).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["up", "down"]
FactValue = str | float | int | bool


@dataclass(frozen=True, slots=True)
class DerivedPoint:
    """One value of a derived series (a rate, a ratio, a latency quantile, a gauge).

    Attributes:
        series: stable id of the derived series (stream identity + derivation).
        node: topology node the series describes (``service.name``, or a peer for client calls).
        metric: derived metric name, e.g. ``http.server.request.rate``.
        t: end of the interval the value describes.
        value: the value, in base units (seconds, ratios, per-second rates).
    """

    series: str
    node: str
    metric: str
    t: float
    value: float


@dataclass(frozen=True, slots=True)
class Signal:
    """A confirmed deviation of one series, produced by a detector.

    Attributes:
        id: stable id (series + onset), so re-detections of one episode keep one id.
        score: strength in [0, 1].
        onset: when the deviation began (not when it was confirmed).
        detected_at: when it was confirmed.
        value, baseline: the observed value and what the detector expected.
        active: ``False`` once the signal has cleared.
    """

    id: str
    series: str
    node: str
    metric: str
    detector: str
    score: float
    direction: Direction
    onset: float
    detected_at: float
    value: float
    baseline: float
    active: bool = True


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact for the rule engine: always carries an explicit id and a type."""

    id: str
    type: str
    attrs: Mapping[str, FactValue]
    at: float

    def as_dict(self) -> dict[str, FactValue]:
        """Return the flat mapping the rule engines match on (``id`` and ``type`` included)."""
        return {**self.attrs, "id": self.id, "type": self.type}


@dataclass(frozen=True, slots=True)
class Firing:
    """One rule firing: which rule, which registered action with which parameters, on what facts."""

    rule: str
    action: str
    params: Mapping[str, FactValue]
    facts: tuple[Mapping[str, FactValue], ...]
    at: float
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A rule's conclusion that an incident pattern holds at a node."""

    id: str
    pattern: str
    node: str
    rule: str
    facts: tuple[Mapping[str, FactValue], ...]
    at: float
    onset: float
    priority: int = 0


@dataclass(frozen=True, slots=True)
class RootCause:
    """One ranked root-cause candidate with its explanation."""

    node: str
    rank: int
    score: float
    path: tuple[str, ...]
    evidence: tuple[str, ...]
    explanation: str
    components: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A playbook considered for a repair, with the numbers that ranked it."""

    playbook: str
    target: str
    utility: float
    p_success: float
    risk: str
    blast_radius: int
    cost: float
    applicable: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen repair (or none) and every candidate considered."""

    incident: str
    chosen: Candidate | None
    candidates: tuple[Candidate, ...]
    why: str
    needs_approval: bool = False


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one executed playbook step did."""

    step: int
    action: str
    target: str
    params: Mapping[str, FactValue]
    started: float
    ended: float
    ok: bool
    detail: str
    dry_run: bool = False
    rollback_point: Mapping[str, FactValue] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a repair ended."""

    incident: str
    success: bool
    verified_at: float | None
    reason: str
