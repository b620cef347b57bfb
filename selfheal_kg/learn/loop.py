"""Close the learning loop: outcomes feed statistics, patterns and fire levels back in.

::

    decision ─► refine (Thompson sampling over the learnt posteriors) ─► repair ─► outcome
        ▲                                                                           │
        └── history_for_decision ◄── incidents graph ◄── on_event("outcome") ◄──────┘
                                                            ├─ mark recurrences
                                                            └─ propose draft patterns
    confirmed false positive ─► ThresholdTuner ─► levels() ─► SignalTracker fire levels

The runtime wires it with ``Knowledge(refine=loop.refine)``, ``runtime.on_event(loop.on_event)``
and ``SignalTracker(levels=loop.levels)``. Everything learnt is read back from the store, so
a restart continues where the previous process stopped.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
from rdflib import Literal

from selfheal_kg.clock import Clock
from selfheal_kg.errors import SelfHealError
from selfheal_kg.kg.store import KnowledgeStore
from selfheal_kg.learn.patterns import Draft, propose_drafts
from selfheal_kg.learn.stats import (
    RECURRENCE_WINDOW,
    history_for_decision,
    mark_recurrences,
    select,
)
from selfheal_kg.learn.thompson import ThompsonChooser
from selfheal_kg.learn.thresholds import Adjustment, ThresholdTuner
from selfheal_kg.model import Candidate, Decision

LEVELS_REFRESH = 10.0  # seconds; other writers (the API's own tuner) are seen this late


class LearningLoop:
    """Refine decisions with what was learnt and learn from every outcome.

    Args:
        store: the knowledge store (incidents, knowledge and learned graphs).
        clock: the time source.
        rng: the random generator of the Thompson sampler (seed it in tests and replays).
        exploration: the largest share of multi-candidate choices that may leave the greedy arm.
        tuner: the fire-level tuner (default: one on ``store`` and ``clock``).
        max_risk: the risk limit of exploration.
        recurrence_window: seconds after a resolution within which a new incident recurs.
        levels_refresh: seconds between reads of the fire levels from the store.
    """

    def __init__(
        self,
        store: KnowledgeStore,
        clock: Clock,
        rng: np.random.Generator,
        exploration: float = 0.2,
        tuner: ThresholdTuner | None = None,
        *,
        max_risk: str = "medium",
        recurrence_window: float = RECURRENCE_WINDOW,
        levels_refresh: float = LEVELS_REFRESH,
    ) -> None:
        self.store, self.clock = store, clock
        self.chooser = ThompsonChooser(rng, exploration, max_risk)
        self.tuner = tuner or ThresholdTuner(store, clock)
        self.recurrence_window = recurrence_window
        self.levels_refresh = levels_refresh
        self.drafts: list[Draft] = []  # the learnt patterns changed by the last outcome
        self.recurred: list[str] = []  # incidents newly marked as recurred, all outcomes
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._levels: dict[str, float] | None = None
        self._levels_at = float("-inf")

    # -- decision -----------------------------------------------------------------------

    def refine(self, decision: Decision, pattern: str) -> Decision:
        """Return ``decision`` with the arm chosen by Thompson sampling, the reason in ``why``.

        Only applicable candidates within the risk limit take part; with fewer than two
        applicable candidates the greedy decision stands.
        """
        usable = [c for c in decision.candidates if c.applicable]
        if len(usable) < 2 or decision.chosen is None:
            return decision
        with self._lock:
            history = history_for_decision(self.store, recurrence_window=self.recurrence_window)
            pick, reason = self.chooser.choose(decision.candidates, pattern, history)
        if pick is None:
            return decision
        arm = f"arm ({pick.playbook}, {pattern})"
        if pick.playbook == decision.chosen.playbook:
            return replace(decision, why=f"{decision.why}; learning: {arm}, {reason}")
        return self._switched(decision, pick, f"learning: {arm}, {reason}")

    def _switched(self, decision: Decision, pick: Candidate, why: str) -> Decision:
        greedy = decision.chosen.playbook if decision.chosen else "none"
        text = f"{pick.playbook} explored instead of {greedy} ({pick.reason}); {why}"
        approval = pick.risk == "high" or self._requires_approval(pick.playbook)
        return replace(decision, chosen=pick, why=text, needs_approval=approval)

    def _requires_approval(self, playbook: str) -> bool:
        """Read the playbook's approval flag; unknown playbooks need approval (fail safe)."""
        q = f"""SELECT ?r WHERE {{ ?pb a shk:Playbook ; shk:playbookId {_literal(playbook)} ;
  shk:requiresApproval ?r }}"""
        rows = select(self.store, q)
        return not rows or any(bool(r["r"]) for r in rows)

    # -- outcomes -----------------------------------------------------------------------

    def on_event(self, kind: str, payload: dict[str, object]) -> None:
        """Learn from a pipeline event; only ``outcome`` events teach anything.

        A store error is kept in ``last_error`` rather than raised: learning must never stop
        the repair that emitted the event.
        """
        if kind != "outcome":
            return
        try:
            self.learn()
        except SelfHealError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"

    def learn(self) -> list[Draft]:
        """Mark recurrences and propose (or grow) draft patterns; return the changed drafts."""
        with self._lock:
            self.recurred += mark_recurrences(self.store, self.recurrence_window)
            self.drafts = propose_drafts(self.store, self.clock.now())
            self.last_error = None
            return self.drafts

    # -- fire levels --------------------------------------------------------------------

    def levels(self) -> dict[str, float]:
        """Return the per-series fire levels (for ``SignalTracker(levels=...)``), cached."""
        now = self.clock.now()
        if self._levels is None or now - self._levels_at >= self.levels_refresh:
            self._levels, self._levels_at = self.tuner.levels(), now
        return self._levels

    def confirm_false_positive(self, incident_id: str, by: str, note: str = "") -> list[Adjustment]:
        """Confirm an incident as noise: raise its series' fire levels (seen at once).

        Raises:
            NotFound: no incident ``incident_id``.
        """
        adjustments = self.tuner.confirm_false_positive(incident_id, by, note)
        self._levels = None
        return adjustments

    def revert(self, adjustment_id: str) -> Adjustment:
        """Undo one fire-level adjustment (seen at once).

        Raises:
            NotFound: no active adjustment ``adjustment_id``.
        """
        adjustment = self.tuner.revert(adjustment_id)
        self._levels = None
        return adjustment


def _literal(value: str) -> str:
    """Return ``value`` as a SPARQL string literal (escaped: ids come from files and users)."""
    return Literal(value).n3()
