"""Rank root-cause candidates among anomalous nodes of the dependency graph.

Candidates are the anomalous nodes (restricted to the target and what it depends on, when a
target is given) plus *inferred* nodes: a node without metrics of its own whose callers are
all anomalous (a database seen only through its clients). Each candidate gets four
components in [0, 1], combined as::

    score = (0.40 graph + 0.10 onset + 0.50 evidence + 0.25 hint) / (1.25 if hints else 1.0)

(The weights were 0.60/0.15/0.25; on PetShop, where many leaves are noisy, the walk alone
put noisy leaves first, so the node's own anomaly strength now weighs half.)

graph     personalized random walk on the candidate subgraph, from symptoms toward their
          dependencies (caller → callee). From node v with anomalous callees the walker goes
          to callee c with probability (1 - BETA) s_c / sum(s) and stays with BETA; a node with
          no anomalous callee keeps the walker (P[v, v] = 1), so mass gathers where no
          anomalous dependency explains the anomaly. With restart probability 1 - ALPHA to
          the personalization p (scores normalised; half of the mass on the target if given):
          pi = (1 - ALPHA) p + ALPHA pi P, solved by power iteration; graph = pi / max(pi).
onset     1 for the earliest onset, 0 for the latest, linear in between (1 if all equal).
evidence  the node's own anomaly score.
hint      a pattern-match strength for the node, when supplied.

``mode="traversal"`` ranks unexplained candidates first: see ``rca/traversal.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import networkx as nx
import numpy as np
import scipy.sparse as sp

from selfheal_kg.errors import ConfigError
from selfheal_kg.model import RootCause
from selfheal_kg.rca.anomaly import (
    DOWN,
    INFERRED,
    Anomaly,
    calls_out,
    first_calls_out,
    metric_family,
    outgoing_share,
)
from selfheal_kg.rca.graph import TopologySnapshot
from selfheal_kg.rca.traversal import TRAVERSAL_WEIGHTS, Verdict, explains, traversal_components

__all__ = [
    "DOWN", "INFERRED", "MODES", "TRAVERSAL_WEIGHTS", "Anomaly", "explains", "metric_family",
    "personalized_walk", "rank", "walk_matrix",
]

ALPHA = 0.85
BETA = 0.15
WEIGHTS = {"graph": 0.40, "onset": 0.10, "evidence": 0.50}
HINT_WEIGHT = 0.25
# a hidden callee is inferred only from callers whose outgoing calls slowed by at least this
# share of their own slowdown (slow-leaf: queries 0.1 ms slower, answers 300 ms slower)
MIN_OUTGOING_SHARE = 0.5
MODES = ("walk", "traversal")


def rank(
    snapshot: TopologySnapshot,
    anomalies: Mapping[str, Anomaly],
    target: str | None = None,
    top: int = 5,
    pattern_hints: Mapping[str, float] | None = None,
    *,
    observed: Collection[str] | None = None,
    mode: str = "walk",
) -> list[RootCause]:
    """Return the ``top`` most likely root causes, best first.

    Args:
        snapshot: the topology; nodes known only from ``anomalies`` are added.
        anomalies: anomalous nodes by name.
        target: the node where the problem was noticed; restricts candidates to it and
            its dependencies, and paths start there.
        top: how many candidates to return.
        pattern_hints: optional per-node pattern-match strength in [0, 1].
        observed: nodes that have metrics of their own; only other nodes may be inferred.
            ``None`` turns inference off (nothing is known to lack metrics).
        mode: ``walk`` (personalized random walk) or ``traversal`` (unexplained first).

    Raises:
        ConfigError: unknown ``mode``.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown ranking mode {mode!r}; expected one of {', '.join(MODES)}")
    live = {n: a for n, a in anomalies.items() if a.score > 0}
    if not live:
        return []
    snap = snapshot.with_nodes([*live, *([target] if target else [])])
    scope = snap.descendants(target) if target else None
    cands = _candidates(snap, live, scope, observed)
    if not cands:
        return []
    names = list(cands)
    sub = _subgraph(snap, names)
    verdicts: list[Verdict] | None = None
    if mode == "traversal":
        comps, verdicts = traversal_components(sub, names, cands, pattern_hints or {})
    else:
        comps = _components(sub, names, cands, target, pattern_hints or {})
    order = np.argsort(-comps["score"], kind="stable")[:top]
    graph = nx.from_scipy_sparse_array(sub, create_using=nx.DiGraph)
    nx.relabel_nodes(graph, dict(enumerate(names)), copy=False)
    return [
        _root_cause(
            k + 1, names[i], cands=cands, comps=comps, i=i, sub=graph, snap=snap, target=target,
            verdict=verdicts[i] if verdicts else None,
        )
        for k, i in enumerate(order.tolist())
    ]


def _candidates(
    snap: TopologySnapshot,
    live: Mapping[str, Anomaly],
    scope: set[str] | None,
    observed: Collection[str] | None,
) -> dict[str, Anomaly]:
    """Return anomalous nodes in scope plus inferred unobserved dependencies."""
    cands = {n: a for n, a in live.items() if scope is None or n in scope}
    if observed is None:
        return cands
    observed = set(observed)
    # Where the evidence tells client-side metrics apart (``http.client.*``, ``db.client.*``),
    # a hidden dependency is blamed only by callers whose OUTGOING calls deviate: a caller
    # that is slow in its own handler says nothing about what it calls.
    client_aware = any(_calls_out(a) for a in cands.values())
    rows = np.array([snap.index[n] for n in cands], dtype=np.intp)
    for row in snap.callees(rows).tolist() if len(rows) else []:
        name = snap.names[row]
        if name in cands or name in observed or (scope is not None and name not in scope):
            continue
        callers = [snap.names[c] for c in snap.callers(row).tolist()]
        if callers and all(c in cands for c in callers):
            if client_aware and not all(_calls_out(cands[c]) for c in callers):
                continue
            if not all(_accounts(cands[c]) for c in callers):
                continue
            cands[name] = _infer(name, [cands[c] for c in callers])
    return cands


def _calls_out(a: Anomaly) -> bool:
    """Whether the anomaly includes client-side (outgoing call) evidence."""
    return any(calls_out(k) for k in a.kinds)


def _accounts(a: Anomaly) -> bool:
    """Whether a caller's outgoing calls account for enough of its latency to blame a callee."""
    share = outgoing_share(a)
    return share is None or share >= MIN_OUTGOING_SHARE


def _infer(name: str, callers: list[Anomaly]) -> Anomaly:
    """Return the anomaly of an unobserved node whose callers are all anomalous.

    Its score is the callers' mean discounted by n / (n + 1) for n callers: one anomalous
    caller is weak evidence against a dependency, several agreeing callers are strong. No
    discount when every caller's first symptom is on its outgoing calls (a database's
    clients whose queries slowed before their answers did): that points at the callee.
    """
    evidence = tuple(dict.fromkeys(e for c in callers for e in c.evidence))
    n = len(callers)
    discount = 1.0 if all(first_calls_out(c) for c in callers) else n / (n + 1)
    return Anomaly(
        node=name,
        score=float(np.mean([c.score for c in callers])) * discount,
        onset=min(c.onset for c in callers),
        evidence=evidence,
        kinds=(INFERRED,),
    )


def _subgraph(snap: TopologySnapshot, names: list[str]) -> sp.csr_matrix:
    """Return the caller → callee adjacency among ``names`` (CSR slicing, no networkx)."""
    idx = np.array([snap.index[n] for n in names], dtype=np.intp)
    return snap.csr[idx][:, idx].tocsr()


def walk_matrix(adj: sp.csr_matrix, s: np.ndarray) -> sp.csr_matrix:
    """Return the row-stochastic walk matrix P of the module docstring."""
    weighted = adj.multiply(s[None, :]).tocsr()
    out = np.asarray(weighted.sum(axis=1)).ravel()
    has_out = out > 0
    scale = np.where(has_out, (1 - BETA) / np.where(has_out, out, 1.0), 0.0)
    moves = sp.diags(scale) @ weighted
    stay = sp.diags(np.where(has_out, BETA, 1.0))
    return sp.csr_matrix(moves + stay)


def personalized_walk(
    adj: sp.csr_matrix, s: np.ndarray, p: np.ndarray, iterations: int = 200
) -> np.ndarray:
    """Return pi solving pi = (1 - ALPHA) p + ALPHA pi P by power iteration."""
    pt = walk_matrix(adj, s).T.tocsr()
    pi = p.copy()
    for _ in range(iterations):
        nxt: np.ndarray = (1 - ALPHA) * p + ALPHA * np.asarray(pt @ pi)
        if np.abs(nxt - pi).sum() < 1e-12:
            return nxt
        pi = nxt
    return pi


def _components(
    adj: sp.csr_matrix,
    names: list[str],
    cands: Mapping[str, Anomaly],
    target: str | None,
    hints: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """Return each component and the combined score, aligned with ``names``."""
    s = np.array([min(1.0, cands[n].score) for n in names])
    p = s / s.sum()
    if target in cands:
        p = 0.5 * p + 0.5 * (np.array(names) == target)
    pi = personalized_walk(adj, s, p)
    onset = np.array([cands[n].onset for n in names])
    span = onset.max() - onset.min()
    comps = {
        "graph": pi / pi.max(),
        "onset": 1 - (onset - onset.min()) / span if span > 0 else np.ones(len(names)),
        "evidence": s,
    }
    score = sum(WEIGHTS[k] * comps[k] for k in WEIGHTS)
    if hints:
        comps["hint"] = np.array([min(1.0, max(0.0, hints.get(n, 0.0))) for n in names])
        score = (score + HINT_WEIGHT * comps["hint"]) / (1 + HINT_WEIGHT)
    comps["score"] = np.asarray(score)
    return comps


def _root_cause(
    rank_no: int,
    node: str,
    *,
    cands: Mapping[str, Anomaly],
    comps: Mapping[str, np.ndarray],
    i: int,
    sub: nx.DiGraph,
    snap: TopologySnapshot,
    target: str | None,
    verdict: Verdict | None = None,
) -> RootCause:
    """Build one ranked RootCause with its path and explanation."""
    a = cands[node]
    components = {k: round(float(v[i]), 6) for k, v in comps.items() if k != "score"}
    score = round(float(comps["score"][i]), 6)
    numbers = ", ".join(f"{k} {v:.2f}" for k, v in components.items())
    return RootCause(
        node=node,
        rank=rank_no,
        score=score,
        path=_path(sub, snap, target, node),
        evidence=a.evidence,
        explanation=f"{_explain(node, a, sub, verdict)} (score {score:.2f}: {numbers})",
        components=components,
    )


def _path(
    sub: nx.DiGraph, snap: TopologySnapshot, target: str | None, node: str
) -> tuple[str, ...]:
    """Return the path from the target (or the most upstream symptom) down to ``node``."""
    if target is None:
        dist = nx.single_source_shortest_path_length(sub.reverse(copy=False), node)
        target = max(dist, key=lambda n: (dist[n], n))
    for g in (sub, snap.graph):
        if target in g and node in g:
            try:
                return tuple(nx.shortest_path(g, target, node))
            except nx.NetworkXNoPath:
                continue
    return (node,)


def _explain(node: str, a: Anomaly, sub: nx.DiGraph, verdict: Verdict | None) -> str:
    """Return a one-line reason for the candidate."""
    deps = sorted(sub.successors(node)) if node in sub else []
    if INFERRED in a.kinds:
        callers = ", ".join(sorted(sub.predecessors(node)))
        text = f"{node} has no metrics of its own, but all its callers are anomalous ({callers})"
        return text if verdict is None or not verdict.explained else f"{text}; {verdict.reason}"
    what = ", ".join(a.kinds) or "metrics"
    if a.diagnosed:
        what += "; diagnosed symptoms " + ", ".join(a.diagnosed)
    if verdict is not None:
        return f"{node} is anomalous ({what}); {verdict.reason}"
    if deps:
        return f"{node} is anomalous ({what}); anomalous dependencies may explain it: " + ", ".join(
            deps
        )
    return f"{node} is anomalous ({what}) and no anomalous dependency explains it"
