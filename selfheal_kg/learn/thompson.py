"""Thompson sampling over repair candidates, with a bounded share of exploration.

The greedy decision (``decide.choose``) always takes the best posterior mean, so a playbook
that was unlucky early is never tried again. Sampling each arm's Beta posterior instead tries
uncertain arms in proportion to the chance that they are best (Russo et al., "A Tutorial on
Thompson Sampling", https://arxiv.org/abs/1707.02038). Repairs touch production, so:

* only applicable candidates within the risk limit take part;
* a high-risk playbook is never chosen by exploration (only when it is the greedy arm);
* at most ``exploration`` of all choices may differ from the greedy arm; past that budget the
  greedy arm is taken.

The sampled utility is the candidate's utility with its posterior mean replaced by the draw,
so cost and blast radius weigh the same as in the greedy decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from selfheal_kg.decide.choose import PRIORS, History
from selfheal_kg.model import Candidate

RISK_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True, slots=True)
class Draw:
    """One arm's sample."""

    candidate: Candidate
    p: float
    utility: float


class ThompsonChooser:
    """Choose among candidates by sampling their Beta posteriors (deterministic given ``rng``).

    Args:
        rng: the random generator (seed it in tests and replays).
        exploration: the largest share of choices that may differ from the greedy arm.
        max_risk: the risk limit; candidates above it never take part.
    """

    def __init__(
        self, rng: np.random.Generator, exploration: float = 0.2, max_risk: str = "medium"
    ) -> None:
        if not 0.0 <= exploration <= 1.0:
            raise ValueError(f"exploration must be in [0, 1], got {exploration}")
        if max_risk not in RISK_RANK:
            raise ValueError(f"max_risk must be one of {sorted(RISK_RANK)}, got {max_risk!r}")
        self.rng = rng
        self.exploration = exploration
        self.max_risk = max_risk
        self.choices = 0
        self.explored = 0

    def choose(
        self,
        candidates: Sequence[Candidate],
        pattern: str,
        history: Mapping[tuple[str, str], History],
    ) -> tuple[Candidate | None, str]:
        """Return the chosen candidate (``None``: none applicable) and the reason to record."""
        usable = [c for c in candidates if c.applicable]
        if not usable:
            return None, "thompson: no applicable candidate"
        greedy = max(usable, key=lambda c: (c.utility, _neg(c.playbook)))
        limit = RISK_RANK[self.max_risk]
        arms = [c for c in usable if RISK_RANK.get(c.risk, 2) <= limit]
        self.choices += 1
        if len(arms) < 2:
            return greedy, f"thompson: greedy {greedy.playbook} (fewer than two arms in risk limit)"
        draws = [self._draw(c, history.get((c.playbook, pattern), History())) for c in arms]
        best = max(draws, key=lambda d: (d.utility, _neg(d.candidate.playbook)))
        return self._settle(best, greedy)

    def _draw(self, cand: Candidate, hist: History) -> Draw:
        a, b = PRIORS.get(cand.risk, PRIORS["high"])
        p = float(self.rng.beta(a + hist.successes, b + hist.failures))
        return Draw(cand, p, cand.utility - cand.p_success + p)

    def _settle(self, best: Draw, greedy: Candidate) -> tuple[Candidate, str]:
        pick = best.candidate
        sampled = f"sampled p={best.p:.3f} for {pick.playbook}"
        if pick.playbook == greedy.playbook:
            return pick, f"thompson: {sampled}, same as greedy"
        if pick.risk == "high":
            why = "high risk is never explored"
            return greedy, f"thompson: {sampled} but {why}; greedy {greedy.playbook}"
        if self.explored + 1 > self.exploration * self.choices:
            why = "exploration budget spent"
            return greedy, f"thompson: {sampled} but {why}; greedy {greedy.playbook}"
        self.explored += 1
        return pick, f"thompson: {sampled}, greedy would be {greedy.playbook}"

    @property
    def exploration_share(self) -> float:
        """Share of the choices so far that differed from the greedy arm."""
        return self.explored / self.choices if self.choices else 0.0


def _neg(name: str) -> tuple[int, ...]:
    """Sort key that makes ``max`` prefer the alphabetically first id on ties (as choose does)."""
    return tuple(-ord(ch) for ch in name)
