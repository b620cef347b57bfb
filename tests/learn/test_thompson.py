"""Thompson sampling: deterministic with a seed, bounded exploration, never explores high risk."""

from __future__ import annotations

import numpy as np
import pytest

from selfheal_kg.decide.choose import History
from selfheal_kg.learn.thompson import ThompsonChooser
from selfheal_kg.model import Candidate

P = "ServiceDown"


def cand(pb: str, p: float, risk: str = "low", applicable: bool = True) -> Candidate:
    return Candidate(pb, "checkout", round(p - 0.1, 6), p, risk, 0, 1.0, applicable, "")


# restart is the greedy arm (posterior 0.9); redeploy is uncertain (prior only, mean 0.7)
ARMS = [cand("restart", 0.9), cand("redeploy", 0.7, "medium")]


def draws(seed: int, n: int, exploration: float = 0.2) -> tuple[ThompsonChooser, list[str]]:
    chooser = ThompsonChooser(np.random.default_rng(seed), exploration=exploration)
    out = []
    for _ in range(n):
        chosen, _why = chooser.choose(ARMS, P, {})
        assert chosen is not None
        out.append(chosen.playbook)
    return chooser, out


def test_same_seed_same_choices() -> None:
    assert draws(7, 50)[1] == draws(7, 50)[1]


@pytest.mark.parametrize("exploration", [0.0, 0.05, 0.2, 1.0])
def test_exploration_share_is_bounded_over_many_draws(exploration: float) -> None:
    chooser, picks = draws(3, 2000, exploration)
    explored = sum(p != "restart" for p in picks)
    assert explored <= exploration * len(picks)
    assert chooser.exploration_share == explored / len(picks)
    if exploration >= 0.05:
        assert explored > 0  # the uncertain arm is actually tried


def test_unbounded_sampling_follows_the_posteriors() -> None:
    # with no budget limit, the share of redeploy is P(Beta(7,3) - 0 > Beta(9,1)) ≈ 0.1-0.3
    _chooser, picks = draws(11, 2000, exploration=1.0)
    share = sum(p == "redeploy" for p in picks) / len(picks)
    assert 0.05 < share < 0.4


def test_history_sharpens_the_posterior() -> None:
    chooser = ThompsonChooser(np.random.default_rng(5), exploration=1.0)
    hist = {("restart", P): History(200, 0), ("redeploy", P): History(0, 200)}
    picks = [chooser.choose(ARMS, P, hist)[0] for _ in range(200)]
    assert all(c is not None and c.playbook == "restart" for c in picks)


def test_high_risk_is_never_explored() -> None:
    arms = [cand("restart", 0.9), cand("failover", 0.5, "high")]
    chooser = ThompsonChooser(np.random.default_rng(1), exploration=1.0, max_risk="high")
    hist = {("failover", P): History(0, 0), ("restart", P): History(0, 30)}
    for _ in range(300):
        chosen, why = chooser.choose(arms, P, hist)
        assert chosen is not None and chosen.playbook == "restart", why


def test_risk_limit_and_applicability() -> None:
    chooser = ThompsonChooser(np.random.default_rng(1))
    arms = [cand("restart", 0.9), cand("scale", 0.99, "high"), cand("x", 0.99, applicable=False)]
    chosen, why = chooser.choose(arms, P, {})
    assert chosen is not None and chosen.playbook == "scale"  # greedy: utility wins
    assert "fewer than two arms" in why
    assert chooser.choose([cand("x", 0.9, applicable=False)], P, {}) == (
        None, "thompson: no applicable candidate")


def test_reason_names_the_sample_and_the_greedy_arm() -> None:
    _chooser, picks = draws(3, 400, exploration=1.0)
    rng_chooser = ThompsonChooser(np.random.default_rng(3), exploration=1.0)
    reasons = [rng_chooser.choose(ARMS, P, {})[1] for _ in range(400)]
    explored = [r for r, p in zip(reasons, picks, strict=True) if p == "redeploy"]
    assert explored and all(r.startswith("thompson: sampled p=") for r in explored)
    assert all("greedy would be restart" in r for r in explored)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="exploration"):
        ThompsonChooser(np.random.default_rng(0), exploration=1.5)
    with pytest.raises(ValueError, match="max_risk"):
        ThompsonChooser(np.random.default_rng(0), max_risk="extreme")
