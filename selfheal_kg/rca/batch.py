"""Batch root cause analysis from files: a topology and long-format metrics.

Topology: a CSV with header ``caller,callee``, or Turtle (``.ttl``) read for ``shk:calls`` and
``shk:dependsOn`` triples (node names from ``shk:serviceName`` / ``rdfs:label``). Metrics: a
CSV ``timestamp,node,metric,value``. Each (node, metric) of the incident window is compared
with its baseline (median and floored MAD, as in :mod:`selfheal_kg.detect.robust_z`); a node's
anomaly is its strongest metric.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

import numpy as np
from rdflib import Graph, URIRef
from rdflib.namespace import RDF, RDFS

from selfheal_kg.detect.batch import parse_time
from selfheal_kg.detect.robust_z import robust_scale
from selfheal_kg.errors import FileLoadError, TurtleSyntaxError
from selfheal_kg.kg.namespaces import SHK
from selfheal_kg.model import RootCause
from selfheal_kg.rca.graph import TopologySnapshot, proxy_targets
from selfheal_kg.rca.rank import Anomaly, metric_family, rank

Z_LOW = 3.0
#: A deviation RATIO_DECADES orders of magnitude beyond the normal range scores 1.
RATIO_DECADES = 2.0
REL_FLOOR, ABS_FLOOR = 0.01, 1e-9

Rows = list[tuple[float, str, str, float]]
Sense = Literal["up", "down", "both"]


@dataclass(frozen=True, slots=True)
class MetricDeviation:
    """How far one metric of one node moved from its baseline."""

    node: str
    metric: str
    z: float
    score: float
    onset: float
    source: str = ""  # the proxy node it was measured at, when folded onto its service


def load_topology(path: Path) -> TopologySnapshot:
    """Read a ``caller,callee`` CSV or a Turtle file into a snapshot.

    Raises:
        FileLoadError: unreadable or malformed (file and line when known).
    """
    if path.suffix.lower() == ".ttl":
        return _load_turtle(path)
    edges = []
    for line, row in _csv_rows(path, ("caller", "callee")):
        caller, callee = row[0].strip(), row[1].strip()
        if not caller or not callee:
            raise FileLoadError(str(path), "empty caller or callee", line=line)
        edges.append((caller, callee))
    return TopologySnapshot.from_edges(edges)


def _load_turtle(path: Path) -> TopologySnapshot:
    g = Graph()
    try:
        g.parse(path, format="turtle")
    except OSError as exc:
        raise FileLoadError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except Exception as exc:  # rdflib raises assorted parser errors; all mean "bad Turtle"
        raise TurtleSyntaxError(str(path), f"not valid Turtle: {exc}") from exc
    edges = [
        (_name(g, s), _name(g, o))
        for p in (SHK.calls, SHK.dependsOn)
        for s, o in g.subject_objects(p)
        if isinstance(s, URIRef) and isinstance(o, URIRef)
    ]
    kinds = {
        _name(g, s): str(o).rsplit("#", 1)[-1].lower()
        for s, o in g.subject_objects(RDF.type)
        if isinstance(s, URIRef) and str(o).startswith(str(SHK)) and str(o) != str(SHK.Node)
    }
    return TopologySnapshot.from_edges(edges, kinds)


def _name(g: Graph, node: URIRef) -> str:
    """Return a node's name: shk:serviceName, else rdfs:label, else its IRI's last segment."""
    for prop in (SHK.serviceName, RDFS.label):
        value = g.value(node, prop)
        if value is not None:
            return str(value)
    return unquote(str(node).rstrip("/").rsplit("/", 1)[-1])


def load_metrics(path: Path) -> Rows:
    """Read a long ``timestamp,node,metric,value`` CSV (empty values are skipped).

    Raises:
        FileLoadError: unreadable or malformed (file and line).
    """
    rows: Rows = []
    for line, row in _csv_rows(path, ("timestamp", "node", "metric", "value")):
        if not row[3].strip():
            continue
        try:
            t, value = parse_time(row[0]), float(row[3])
        except ValueError as exc:
            raise FileLoadError(str(path), f"bad timestamp or value: {exc}", line=line) from exc
        if not math.isfinite(value):
            raise FileLoadError(str(path), f"value {row[3]!r} is not finite", line=line)
        rows.append((t, row[1].strip(), row[2].strip(), value))
    return rows


def _csv_rows(path: Path, columns: tuple[str, ...]) -> Iterable[tuple[int, list[str]]]:
    """Yield (line, row) of a CSV whose header starts with ``columns``."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            if tuple(header[: len(columns)]) != columns:
                raise FileLoadError(str(path), f"expected header {','.join(columns)}", line=1)
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) < len(columns):
                    raise FileLoadError(
                        str(path), f"expected {len(columns)} columns", line=reader.line_num
                    )
                yield reader.line_num, row
    except OSError as exc:
        raise FileLoadError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise FileLoadError(str(path), f"not UTF-8 text: {exc.reason}") from exc
    except csv.Error as exc:
        raise FileLoadError(str(path), f"malformed CSV: {exc}") from exc


def split_baseline(rows: Rows, at: float | None) -> tuple[Rows, Rows]:
    """Split rows into (baseline, incident) at ``at``, or at the middle of the time range."""
    if not rows:
        return [], []
    if at is None:
        times = [r[0] for r in rows]
        at = (min(times) + max(times)) / 2
    return [r for r in rows if r[0] < at], [r for r in rows if r[0] >= at]


def metric_direction(metric: str) -> Sense:
    """Return which way ``metric`` goes wrong: latency/errors up, availability down, else both."""
    name = metric.lower()
    if any(w in name for w in ("availability", "success", "apdex")):
        return "down"
    if any(w in name for w in ("latency", "duration", "error", "fault", "p9", "time")):
        return "up"
    return "both"


def deviations(
    baseline: Rows, incident: Rows, recent: Rows | None = None
) -> list[MetricDeviation]:
    """Compare each (node, metric) of the incident with its baseline's normal range.

    Per metric: the baseline's median ``med`` and scale ``1.4826 MAD`` (floored), and its
    own largest deviation from ``med`` in the metric's bad direction (the noise floor: what
    normal operation already reached). The incident's worst point in that direction deviates
    by ``dev``; the metric counts only when ``dev`` exceeds ``max(noise floor, Z_LOW scale)``
    and its score is ``log10(dev / that) / RATIO_DECADES`` capped at 1 (0 at the edge of the
    normal range, 1 at a hundred times it): a log scale keeps large deviations apart.
    ``z`` is ``dev / scale``, signed by the direction.

    ``recent`` holds the rows just before the incident. A metric out of range throughout
    them is a regime the baseline did not record (a balancer that failed days ago), not
    this incident: its score loses the score of the least deviating recent row (a fault
    that began within the recent rows is not penalised), and it is dropped at zero.
    """
    base = _group(baseline)
    before = _group(recent or [])
    out = []
    for key, points in _group(incident).items():
        ref = base.get(key)
        if not ref:
            continue
        values = np.array([v for _, v in ref])
        sense = metric_direction(key[1])
        dev = _deviation(values, points, sense)
        if dev is None:
            continue
        prior = _deviation(values, before[key], sense, steady=True) if before.get(key) else None
        score = dev[1] - (prior[1] if prior is not None and prior[0] * dev[0] > 0 else 0.0)
        if score > 0:
            out.append(MetricDeviation(key[0], key[1], dev[0], score, dev[2]))
    return out


def _deviation(
    ref: np.ndarray, points: list[tuple[float, float]], sense: Sense, *, steady: bool = False
) -> tuple[float, float, float] | None:
    """Return (z, score, onset) of one metric, or None when it stays in its normal range.

    The score is the worst point's, or with ``steady`` the least deviating point's: what
    held throughout ``points``.
    """
    med = float(np.median(ref))
    scale = float(robust_scale(
        np.array([med]), np.array([np.median(np.abs(ref - med))]), REL_FLOOR, ABS_FLOOR
    )[0])
    vals = np.array([v for _, v in points])
    signs = {"up": (1.0,), "down": (-1.0,), "both": (1.0, -1.0)}[sense]
    best: tuple[float, float, float] | None = None
    for sign in signs:
        excess = sign * (vals - med)
        floor = max(float(np.max(sign * (ref - med))), Z_LOW * scale)
        worst = int(np.argmin(excess) if steady else np.argmax(excess))
        if excess[worst] <= floor:
            continue
        score = min(1.0, math.log10(float(excess[worst]) / floor) / RATIO_DECADES)
        onset = points[int(np.flatnonzero(excess > floor)[0])][0]
        if best is None or score > best[1]:
            best = (sign * float(excess[worst]) / scale, score, onset)
    return best


def _group(rows: Rows) -> dict[tuple[str, str], list[tuple[float, float]]]:
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for t, node, metric, value in sorted(rows):
        groups[(node, metric)].append((t, value))
    return groups


def node_anomalies(
    devs: Iterable[MetricDeviation], metrics: Collection[str] | None = None
) -> dict[str, Anomaly]:
    """Fold metric deviations into one Anomaly per node (strongest metric wins).

    Args:
        devs: metric deviations.
        metrics: keep only these metrics, named in full (``latency.Average``) or by family
            (``latency``, see :func:`metric_family`), e.g. the one the problem was noticed
            on; ``None`` keeps all.
    """
    kept = (d for d in devs if d.score > 0 and _wanted(d.metric, metrics))
    by_node: Mapping[str, list[MetricDeviation]] = _by_node(kept)
    return {
        node: Anomaly(
            node=node,
            score=max(d.score for d in ds),
            onset=min(d.onset for d in ds),
            evidence=tuple(f"{d.source or d.node}/{d.metric}" for d in ds),
            kinds=tuple(dict.fromkeys(d.metric for d in ds)),
        )
        for node, ds in by_node.items()
    }


def _wanted(metric: str, metrics: Collection[str] | None) -> bool:
    """Whether ``metric`` is among ``metrics`` (by full name or family; ``None``: all)."""
    return metrics is None or metric in metrics or metric_family(metric) in metrics


def _by_node(devs: Iterable[MetricDeviation]) -> dict[str, list[MetricDeviation]]:
    out: dict[str, list[MetricDeviation]] = defaultdict(list)
    for d in devs:
        out[d.node].append(d)
    return out


def fold_proxies(
    devs: Iterable[MetricDeviation], mapping: Mapping[str, str]
) -> list[MetricDeviation]:
    """Move each deviation measured at a proxy node onto the service the proxy stands for."""
    return [
        replace(d, node=mapping[d.node], source=d.source or d.node) if d.node in mapping else d
        for d in devs
    ]


def rank_incident(
    snapshot: TopologySnapshot,
    baseline: Rows,
    incident: Rows,
    *,
    recent: Rows | None = None,
    target: str | None = None,
    metrics: Collection[str] | None = None,
    top: int = 5,
    mode: str = "traversal",
) -> list[RootCause]:
    """Rank the root causes of one incident from files' rows (the batch path).

    Proxy nodes are folded onto the service they stand for (:func:`proxy_targets`), each
    metric is scored against ``baseline`` less what ``recent`` (the rows just before the
    incident) already showed, only ``metrics`` count (by name or family, e.g. the target's),
    and :func:`rank` orders the candidates in ``mode``.
    """
    mapping = proxy_targets(snapshot)
    devs = fold_proxies(deviations(baseline, incident, recent), mapping)
    observed = {mapping.get(r[1], r[1]) for r in (*baseline, *incident)}
    return rank(
        snapshot.merged(mapping),
        node_anomalies(devs, metrics),
        target=mapping.get(target, target) if target else None,
        top=top,
        observed=observed,
        mode=mode,
    )
