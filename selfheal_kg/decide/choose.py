"""Choose the repair with the best expected utility at acceptable risk.

For each playbook the knowledge graph links to the diagnosed pattern:

* ``p_success`` — the mean of a Beta posterior: the prior comes from the declared risk
  (low → Beta(9, 1), medium → Beta(7, 3), high → Beta(5, 5)) and is updated with the recorded
  successes and failures of this playbook for this pattern;
* ``blast_radius`` — how many nodes depend on the target, transitively (callers of callers);
* mitigations — declared rollback steps halve the blast-radius penalty;
* ``utility = p_success - 0.1 * cost - 0.05 * blast_radius * risk_weight * mitigation``.

Playbooks whose target types exclude the target are kept in the record as not applicable, so
the explanation shows every candidate. Risk ``high`` or ``requires_approval`` needs approval.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import networkx as nx

from selfheal_kg.model import Candidate, Decision

PRIORS: dict[str, tuple[float, float]] = {
    "low": (9.0, 1.0),
    "medium": (7.0, 3.0),
    "high": (5.0, 5.0),
}
RISK_WEIGHT: dict[str, float] = {"low": 0.2, "medium": 0.6, "high": 1.0}
COST_WEIGHT = 0.1
BLAST_WEIGHT = 0.05
MITIGATED = 0.5  # the blast-radius penalty left when a repair can be rolled back
#: why named requirements do not hold on a target: ``(names, target) -> reasons``
Unmet = Callable[[Sequence[str], str], list[str]]
#: which actions can run: the offered actions, or ``(action, target) -> why not | None``
Availability = Collection[str] | Callable[[str, str | None], str | None] | None


class PlaybookLike(Protocol):
    """What the decision needs of a playbook."""

    @property
    def id(self) -> str: ...
    @property
    def handles(self) -> tuple[str, ...]: ...
    @property
    def risk(self) -> str: ...
    @property
    def cost(self) -> float: ...
    @property
    def requires_approval(self) -> bool: ...
    @property
    def target_types(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class History:
    """Recorded outcomes of one playbook for one pattern."""

    successes: int = 0
    failures: int = 0


def _mitigations(pb: PlaybookLike) -> list[str]:
    """Return what limits the damage of ``pb`` going wrong: declared rollback steps."""
    return ["rollback"] if getattr(pb, "rollback", ()) else []


def blast_radius(topology: nx.DiGraph, target: str) -> int:
    """Return the number of nodes that depend on ``target`` (edges point caller → callee)."""
    if target not in topology:
        return 0
    return len(nx.ancestors(topology, target))


def p_success(risk: str, history: History) -> float:
    """Return the posterior mean probability that the playbook succeeds."""
    a, b = PRIORS.get(risk, PRIORS["high"])
    return (a + history.successes) / (a + b + history.successes + history.failures)


def _blockers(pb: PlaybookLike, target: str, available: Availability) -> list[str]:
    """Return why ``pb``'s steps cannot run on ``target`` now (empty: they can)."""
    if available is None:
        return []
    steps = getattr(pb, "steps", ())
    if not callable(available):
        missing = sorted({st.action for st in steps} - set(available))
        return [f"no executor offers {', '.join(missing)}"] if missing else []
    out: list[str] = []
    for st in steps:
        # a step on the target's callers acts elsewhere: only its executor must exist
        where = target if getattr(st, "acts_on", "target") == "target" else None
        reason = available(st.action, where)
        if reason is not None:
            out.append(reason)
    return list(dict.fromkeys(out))


def evaluate(
    pb: PlaybookLike,
    target: str,
    target_type: str,
    topology: nx.DiGraph,
    history: History,
    available: Availability = None,
    unmet: Unmet | None = None,
) -> Candidate:
    """Return the candidate's numbers for repairing ``target`` with ``pb``.

    ``available`` says which actions can be carried out: a collection of the actions some
    executor offers, or a function ``(action, target) -> reason or None`` that also asks the
    executor whether it can act on this target now (``Healer.unavailable``; target ``None``
    for a step that acts on the callers: only its executor must exist). A playbook with
    a step that cannot run is not applicable (``None``: do not check). ``unmet`` judges the
    playbook's ``requires`` on the evidence (``decide.requirements``).
    """
    type_ok = not pb.target_types or target_type in pb.target_types
    blockers = _blockers(pb, target, available)
    requires = tuple(getattr(pb, "requires", ()))
    if requires and unmet is not None:
        blockers = unmet(requires, target) + blockers
    applicable = type_ok and not blockers
    radius = blast_radius(topology, target)
    p = p_success(pb.risk, history)
    mitigations = _mitigations(pb)
    # a repair that can be undone exposes its dependents for less time when it goes wrong
    exposure = radius * RISK_WEIGHT.get(pb.risk, 1.0) * (MITIGATED if mitigations else 1.0)
    utility = p - COST_WEIGHT * pb.cost - BLAST_WEIGHT * exposure
    reason = (
        f"p_success={p:.2f} (prior {pb.risk}, {history.successes} ok / {history.failures} failed)"
        f", blast_radius={radius}, cost={pb.cost:g}"
        f", mitigations={'+'.join(mitigations) or 'none'}"
    )
    if not type_ok:
        reason = f"not applicable: target type {target_type!r} not in {list(pb.target_types)}"
    elif blockers:
        reason = f"not applicable: {'; '.join(blockers)}"
    return Candidate(
        playbook=pb.id,
        target=target,
        utility=round(utility, 6),
        p_success=round(p, 6),
        risk=pb.risk,
        blast_radius=radius,
        cost=pb.cost,
        applicable=applicable,
        reason=reason,
    )


def choose(
    incident: str,
    pattern: str,
    target: str,
    target_type: str,
    playbooks: Sequence[PlaybookLike],
    topology: nx.DiGraph,
    history: Mapping[tuple[str, str], History],
    available: Availability = None,
    unmet: Unmet | None = None,
) -> Decision:
    """Rank the playbooks for ``pattern`` on ``target`` and pick the best applicable one."""
    cands = [
        evaluate(
            pb, target, target_type, topology, history.get((pb.id, pattern), History()), available,
            unmet,
        )
        for pb in playbooks
        if pattern in pb.handles
    ]
    cands.sort(key=lambda c: (not c.applicable, -c.utility, c.playbook))
    usable = [c for c in cands if c.applicable]
    if not usable:
        why = f"no applicable playbook for pattern {pattern} on {target}: escalate to a human"
        return Decision(incident=incident, chosen=None, candidates=tuple(cands), why=why)
    best = usable[0]
    by_id = {pb.id: pb for pb in playbooks}
    pb = by_id[best.playbook]
    approval = pb.requires_approval or pb.risk == "high"
    others = ", ".join(f"{c.playbook}={c.utility:.3f}" for c in cands[1:]) or "none"
    why = (
        f"{best.playbook} has the highest expected utility {best.utility:.3f} for {pattern} on "
        f"{target} ({best.reason}); alternatives: {others}"
    )
    return Decision(
        incident=incident, chosen=best, candidates=tuple(cands), why=why, needs_approval=approval
    )
