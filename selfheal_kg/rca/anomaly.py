"""What RCA knows about one anomalous node, and how its metrics group into symptom families."""

from __future__ import annotations

from dataclasses import dataclass

INFERRED = "inferred"  # the kind of a node blamed through its callers' evidence only
DOWN = "health.down"  # the kind of a node whose telemetry stopped (rca/evidence.py)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """What is known to be wrong at one node.

    Attributes:
        node: topology node name.
        score: strength in [0, 1].
        onset: earliest onset of its signals (epoch seconds).
        evidence: ids of the signals behind it.
        kinds: metric kinds that deviate (``latency``, ``errors``, ...).
        diagnosed: the symptom metrics of the patterns a rule concluded at this node (e.g.
            ``http.server.request.rate`` and ``http.server.duration.mean`` for Overload):
            corroborated evidence, which a dependency must account for in full to explain it.
        onsets: the onset of each of ``kinds`` (aligned with it), when known.
        deltas: how far each of ``kinds`` moved from its baseline (value - baseline, in the
            metric's unit; aligned with it), when known.
    """

    node: str
    score: float
    onset: float
    evidence: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    diagnosed: tuple[str, ...] = ()
    onsets: tuple[float, ...] = ()
    deltas: tuple[float, ...] = ()


def first_calls_out(a: Anomaly) -> bool:
    """Whether ``a``'s first symptom (earliest onset) is on its outgoing calls."""
    if len(a.onsets) != len(a.kinds) or not a.kinds:
        return False
    first = min(a.onsets)
    return any(calls_out(k) and o <= first for k, o in zip(a.kinds, a.onsets, strict=True))


def metric_family(metric: str) -> str:
    """Return what ``metric`` measures: ``latency``, ``availability``, ``errors`` or its stem.

    The stem is the name up to its first ``.`` (``requests.Sum`` → ``requests``).
    """
    name = metric.lower()
    if any(w in name for w in ("availability", "success", "apdex")):
        return "availability"
    if any(w in name for w in ("error", "fault")):
        return "errors"
    if any(w in name for w in ("latency", "duration", "time", "p9")):
        return "latency"
    return name.split(".", 1)[0]


def families(metrics: tuple[str, ...]) -> frozenset[str]:
    """Return the metric families of ``metrics``."""
    return frozenset(metric_family(m) for m in metrics)


def calls_out(metric: str) -> bool:
    """Whether ``metric`` measures outgoing calls (the callee as its caller sees it).

    ``http.client.*`` and ``db.client.operation.*`` do; a client's connection pool
    (``db.client.connection.*``) is the caller's own resource and says nothing about the
    callee.
    """
    if ".client.connection." in metric:
        return False
    return ".client." in metric or metric.startswith("client")


def outgoing_share(a: Anomaly) -> float | None:
    """Return how much of ``a``'s latency increase its outgoing calls account for.

    Per statistic both sides show (``mean`` with ``mean``, ``p95`` with ``p95``; else the
    largest of each), the increase of the outgoing-call latency over the increase of its own
    latency, the best of them; 1.0 when only the outgoing calls slowed; ``None`` when unknown
    (no deltas, or no outgoing-call latency among its symptoms). A database whose queries got
    0.1 ms slower does not account for answers 300 ms slower.
    """
    if len(a.deltas) != len(a.kinds):
        return None
    out: dict[str, float] = {}
    own: dict[str, float] = {}
    for kind, delta in zip(a.kinds, a.deltas, strict=True):
        if metric_family(kind) == "latency":
            side = out if calls_out(kind) else own
            stat = kind.rsplit(".", 1)[-1]
            side[stat] = max(side.get(stat, delta), delta)
    if not out:
        return None
    if not own or max(own.values()) <= 0:
        return 1.0
    pairs = [(out[k], own[k]) for k in out.keys() & own.keys() if own[k] > 0]
    if not pairs:
        pairs = [(max(out.values()), max(own.values()))]
    return max(max(o, 0.0) / w for o, w in pairs)
