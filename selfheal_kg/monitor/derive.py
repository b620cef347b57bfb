"""Derived metrics: what each OTLP metric becomes, aggregated per node per export.

Per node (``service.name``) and per export, all streams of one metric are combined:

- ``http.server.request.duration`` (old: ``http.server.duration``, ms) →
  ``http.server.request.rate``, ``http.server.error.ratio``, ``http.server.duration.mean``,
  ``http.server.duration.p95``; the same with ``http.client.`` for client durations;
- any other histogram (or summary) ``X`` → ``X.rate``, ``X.mean``, ``X.p95``;
- a monotonic sum ``X`` → ``X.rate`` (summed over streams);
- a non-monotonic sum ``X`` → ``X`` (summed: sums are additive); a gauge ``X`` → ``X`` (mean).

When one export carries two points of the same stream (a Collector batching two collections),
the second one opens a second aggregate, so a rate is never the sum of two intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from selfheal_kg.model import DerivedPoint
from selfheal_kg.monitor.histograms import Buckets, merge, quantile
from selfheal_kg.monitor.streams import HistogramInterval

P95: Final = 0.95


@dataclass(frozen=True, slots=True)
class HistogramNames:
    """The derived metric names of a histogram family (``None``: not derived)."""

    rate: str
    errors: str | None
    mean: str
    p95: str


_HTTP_FAMILIES: Final = {
    "http.server.request.duration": "http.server",
    "http.server.duration": "http.server",
    "http.client.request.duration": "http.client",
    "http.client.duration": "http.client",
}
#: Old HTTP duration metrics were in milliseconds, sometimes without a unit.
OLD_MS_METRICS: Final = frozenset({"http.server.duration", "http.client.duration"})


def histogram_names(metric: str) -> HistogramNames:
    """Return the derived names of a histogram metric."""
    prefix = _HTTP_FAMILIES.get(metric)
    if prefix is None:
        return HistogramNames(f"{metric}.rate", None, f"{metric}.mean", f"{metric}.p95")
    return HistogramNames(
        f"{prefix}.request.rate",
        f"{prefix}.error.ratio",
        f"{prefix}.duration.mean",
        f"{prefix}.duration.p95",
    )


def _point(node: str, metric: str, t: float, value: float) -> DerivedPoint:
    return DerivedPoint(f"{node}|{metric}", node, metric, t, value)


class _ValueGroup:
    """Gauge values (mean) or additive values (sum) of one metric at one node."""

    __slots__ = ("mode", "streams", "t", "values")

    def __init__(self, mode: Literal["mean", "sum"]) -> None:
        self.mode = mode
        self.streams: set[int] = set()
        self.t = 0.0
        self.values: list[float] = []

    def points(self, node: str, metric: str) -> Iterator[DerivedPoint]:
        total = sum(self.values)
        value = total / len(self.values) if self.mode == "mean" else total
        yield _point(node, metric, self.t, value)


class _HistogramGroup:
    """Histogram intervals of one family at one node."""

    __slots__ = ("buckets", "count", "errors", "rate", "streams", "sum", "t")

    def __init__(self) -> None:
        self.streams: set[int] = set()
        self.t = 0.0
        self.rate = 0.0
        self.count = 0.0
        self.errors = 0.0
        self.sum: float | None = 0.0
        self.buckets: list[Buckets] = []

    def add(self, interval: HistogramInterval, scale: float, failed: bool) -> None:
        self.rate += interval.count / interval.seconds
        self.count += interval.count
        if failed:
            self.errors += interval.count
        if self.sum is not None:
            self.sum = None if interval.sum is None else self.sum + interval.sum * scale
        b = interval.buckets
        self.buckets.append(b if scale == 1.0 else Buckets(b.bounds * scale, b.counts))

    def points(self, node: str, names: HistogramNames) -> Iterator[DerivedPoint]:
        yield _point(node, names.rate, self.t, self.rate)
        if self.count <= 0:
            return
        if names.errors is not None:
            yield _point(node, names.errors, self.t, self.errors / self.count)
        if self.sum is not None:
            yield _point(node, names.mean, self.t, self.sum / self.count)
        p95 = quantile(P95, merge(self.buckets))
        if p95 is not None:
            yield _point(node, names.p95, self.t, p95)


class Derivation:
    """Collects one export's contributions and turns them into derived points."""

    __slots__ = ("_histograms", "_values")

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, str], list[_ValueGroup]] = {}
        # keyed by strings (hashes cached) rather than by the names dataclass, whose hash is
        # recomputed at each of the many points; (rate, errors) determine the other names
        self._histograms: dict[
            tuple[str, str, str | None], tuple[HistogramNames, list[_HistogramGroup]]
        ] = {}

    def value(
        self,
        node: str,
        metric: str,
        mode: Literal["mean", "sum"],
        stream: object,
        *,
        t: float,
        value: float,
    ) -> None:
        """Add a gauge (``mean``) or additive (``sum``) value of ``stream`` at ``t`` seconds."""
        groups = self._values.setdefault((node, metric, mode), [])
        group = _free(groups, id(stream), lambda: _ValueGroup(mode))
        group.values.append(value)
        group.t = max(group.t, t)

    def histogram(
        self,
        node: str,
        names: HistogramNames,
        stream: object,
        *,
        t: float,
        interval: HistogramInterval,
        scale: float,
        failed: bool,
    ) -> None:
        """Add one histogram interval of ``stream`` (``scale`` brings it to base units)."""
        key = (node, names.rate, names.errors)
        found = self._histograms.get(key)
        if found is None:
            found = self._histograms[key] = (names, [])
        group = _free(found[1], id(stream), _HistogramGroup)
        group.add(interval, scale, failed)
        group.t = max(group.t, t)

    def points(self) -> list[DerivedPoint]:
        """Return the derived points, in time order."""
        out: list[DerivedPoint] = []
        for (node, metric, _), value_groups in self._values.items():
            for vg in value_groups:
                out.extend(vg.points(node, metric))
        for (node, _, _), (names, histogram_groups) in self._histograms.items():
            for hg in histogram_groups:
                out.extend(hg.points(node, names))
        out.sort(key=lambda p: p.t)
        return out


_G = TypeVar("_G", _ValueGroup, _HistogramGroup)


def _free(groups: list[_G], stream: int, new: Callable[[], _G]) -> _G:
    """Return the first group ``stream`` has not contributed to yet, opening one if needed."""
    for group in groups:
        if stream not in group.streams:
            group.streams.add(stream)
            return group
    group = new()
    group.streams.add(stream)
    groups.append(group)
    return group
