"""The traversal ranking: unexplained anomalies first (as the PetShop reference, Hardt et al. 2023).

A candidate is *explained* when its anomalous dependencies account for it:

* by default, when one of them deviates in a metric family it deviates in too (latency
  explains latency); a dependency that is down, inferred, or says nothing about its kinds
  explains everything;
* when a rule diagnosed a pattern at the candidate (``Anomaly.diagnosed``), only when its
  dependencies together show every family of that pattern's symptoms: an Overload (request
  rate AND latency up) is not explained by a dependency that is merely slow.

A candidate is *collateral* (and counts as explained) when an anomalous caller's diagnosed
pattern shows every family the candidate deviates in, and more: a node that is merely slow
below an overloaded caller is more likely its victim (shared CPU, queueing) than the cause.
So is a node, still reporting, whose only symptoms are drops of its traffic while a caller
is anomalous (the caller fails before calling on). An inferred node whose callers are all
collateral is collateral too. Scores::

    base  = 0.80 evidence + 0.20 onset
    score = (unexplained + base) / 2                              without hints
    score = (unexplained + 0.50 hint + 0.50 base) / 2             with hints

so every unexplained candidate outranks every explained one, and among equals a diagnosed
pattern (hint) weighs as much as the strength and earliness of the deviation. An inferred
node inherits its strongest caller's hint (its evidence is theirs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from selfheal_kg.rca.anomaly import DOWN, INFERRED, Anomaly, families

TRAVERSAL_WEIGHTS = {"evidence": 0.80, "onset": 0.20}
HINT_SHARE = 0.50
ALL = frozenset({"*"})  # what a down or inferred dependency accounts for: everything


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a candidate is explained, and the reason, for its RootCause explanation."""

    explained: bool
    reason: str


def explains(callee: Anomaly, caller: Anomaly) -> bool:
    """Whether an anomalous ``callee`` accounts for its ``caller``'s anomaly on its own."""
    return _explained(caller, [callee])


def _covers(callee: Anomaly) -> frozenset[str]:
    """Return the metric families a dependency's anomaly can account for."""
    if INFERRED in callee.kinds or DOWN in callee.kinds or not callee.kinds:
        return ALL
    return families(callee.kinds)


def _explained(caller: Anomaly, callees: list[Anomaly]) -> bool:
    """Whether ``callees`` together account for ``caller`` (see the module docstring)."""
    if not callees:
        return False
    covered = frozenset().union(*(_covers(c) for c in callees))
    if covered >= ALL or not caller.kinds:
        return True
    if caller.diagnosed:
        return families(caller.diagnosed) <= covered
    return not covered.isdisjoint(families(caller.kinds))


def _collateral_of(node: Anomaly, callers: list[Anomaly]) -> str | None:
    """Return why ``node`` is collateral of an anomalous caller, or None."""
    if not node.kinds or DOWN in node.kinds or INFERRED in node.kinds or not callers:
        return None
    own = families(node.kinds)
    if _only_less_traffic(node):
        return f"collateral: traffic lost upstream ({callers[0].node} is anomalous)"
    for caller in callers:
        diagnosed = families(caller.diagnosed)
        if diagnosed and own <= families(caller.kinds) and not diagnosed <= own:
            return f"collateral of {caller.node}'s diagnosed pattern"
    return None


def _only_less_traffic(node: Anomaly) -> bool:
    """Whether every symptom of ``node`` is a drop of a measure other than its quality.

    Fewer requests reaching a node that still reports are decided by its callers (a caller
    failing before it calls on): that drop is theirs, not its own fault.
    """
    quality = {"latency", "errors", "availability"}
    return (
        len(node.deltas) == len(node.kinds)
        and families(node.kinds).isdisjoint(quality)
        and all(d < 0 for d in node.deltas)
    )


def verdicts(
    adj: sp.csr_matrix, names: list[str], cands: Mapping[str, Anomaly]
) -> list[Verdict]:
    """Return, aligned with ``names``, whether each candidate is explained, and why."""
    csc = adj.tocsc()
    out: list[Verdict] = []
    for i, name in enumerate(names):
        a = cands[name]
        deps = [cands[names[j]] for j in adj[i].indices.tolist()]
        if _explained(a, deps):
            out.append(Verdict(True, "explained by " + ", ".join(sorted(d.node for d in deps))))
            continue
        callers = [cands[names[j]] for j in csc[:, i].indices.tolist()]
        collateral = _collateral_of(a, callers)
        if collateral is not None:
            out.append(Verdict(True, collateral))
        else:
            out.append(Verdict(False, "not explained by any anomalous dependency"))
    return _inferred_collateral(out, csc, names, cands)


def _inferred_collateral(
    out: list[Verdict], csc: sp.csc_matrix, names: list[str], cands: Mapping[str, Anomaly]
) -> list[Verdict]:
    """Mark an inferred node collateral when every caller it was inferred from is."""
    for i, _name, callers in _inferred(csc, names, cands):
        if callers and all(out[j].reason.startswith("collateral") for j in callers):
            out[i] = Verdict(True, "collateral: every caller it is inferred from is collateral")
    return out


def _inferred(
    csc: sp.csc_matrix, names: list[str], cands: Mapping[str, Anomaly]
) -> Iterator[tuple[int, str, list[int]]]:
    """Each node inferred from its callers: its index, name and its callers' indices."""
    for i, name in enumerate(names):
        if INFERRED in cands[name].kinds:
            yield i, name, csc[:, i].indices.tolist()


def inherited_hints(
    adj: sp.csr_matrix,
    names: list[str],
    cands: Mapping[str, Anomaly],
    hints: Mapping[str, float],
) -> dict[str, float]:
    """Return ``hints`` with each inferred node given its strongest caller's hint."""
    out = dict(hints)
    for _i, name, callers in _inferred(adj.tocsc(), names, cands):
        got = [hints.get(names[j], 0.0) for j in callers]
        out[name] = max([out.get(name, 0.0), *got])
    return out


def traversal_components(
    adj: sp.csr_matrix,
    names: list[str],
    cands: Mapping[str, Anomaly],
    hints: Mapping[str, float],
) -> tuple[dict[str, np.ndarray], list[Verdict]]:
    """Return the components and score, aligned with ``names``, and each verdict."""
    judged = verdicts(adj, names, cands)
    unexplained = np.array([0.0 if v.explained else 1.0 for v in judged])
    onset = np.array([cands[n].onset for n in names])
    span = onset.max() - onset.min()
    comps = {
        "unexplained": unexplained,
        "onset": 1 - (onset - onset.min()) / span if span > 0 else np.ones(len(names)),
        "evidence": np.array([min(1.0, cands[n].score) for n in names]),
    }
    base = sum(TRAVERSAL_WEIGHTS[k] * comps[k] for k in TRAVERSAL_WEIGHTS)
    if hints:
        full = inherited_hints(adj, names, cands, hints)
        comps["hint"] = np.array([min(1.0, max(0.0, full.get(n, 0.0))) for n in names])
        base = HINT_SHARE * comps["hint"] + (1 - HINT_SHARE) * base
    comps["score"] = np.asarray((unexplained + base) / 2)
    return comps, judged
