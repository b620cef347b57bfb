"""OTLP attributes as Python values, semantic-convention names (old and new) and units.

Semantic conventions: https://opentelemetry.io/docs/specs/semconv/ (v1.4x); the old names
are those emitted by instrumentations written before the HTTP/DB conventions were stabilised.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

AttrValue = str | bool | int | float | bytes | tuple[object, ...] | None
AttrKey = tuple[tuple[str, AttrValue], ...]

NODE_KEY: Final = "service.name"
UNKNOWN_NODE: Final = "unknown_service"

#: New name ← old names, for the attributes selfheal-kg reads.
RENAMED: Final[Mapping[str, tuple[str, ...]]] = {
    "http.response.status_code": ("http.status_code",),
    "http.request.method": ("http.method",),
    "server.address": ("net.peer.name",),
    "server.port": ("net.peer.port",),
    "db.system.name": ("db.system",),
    "db.namespace": ("db.name",),
    "service.peer.name": ("peer.service",),
    "rpc.system.name": ("rpc.system",),
    "deployment.environment.name": ("deployment.environment",),
}

_SCALARS: Final = frozenset(
    {"string_value", "bool_value", "int_value", "double_value", "bytes_value"}
)

# UCUM time units → seconds; everything else keeps its unit.
_TIME_UNITS: Final[Mapping[str, float]] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def value_of(value: AnyValue) -> AttrValue:
    """Return an ``AnyValue`` as a hashable Python value (arrays and maps become tuples)."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        scalar: AttrValue = getattr(value, kind)
        return scalar
    if kind == "array_value":
        return tuple(value_of(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return attribute_key(value.kvlist_value.values)
    return None


def attributes(kvs: Iterable[KeyValue]) -> dict[str, AttrValue]:
    """Return attributes as a dict (the last of repeated keys wins)."""
    return {kv.key: value_of(kv.value) for kv in kvs}


def attribute_key(kvs: Iterable[KeyValue]) -> AttrKey:
    """Return attributes as a sorted tuple: equal sets give equal keys whatever their order."""
    return tuple(sorted((kv.key, value_of(kv.value)) for kv in kvs))


class KeyCache:
    """Builds :func:`attribute_key` keys faster, sharing each (name, value) pair between keys.

    A stream's point attributes come back at every export and the same pairs recur across
    streams (``http.request.method=GET``): a pair is read once per distinct encoding, then
    found by its serialized bytes. Sharing the pairs (and interning the names) is also what
    keeps the memory of a stream key small. Bounded: the cache empties when full.
    """

    __slots__ = ("_max", "_pairs")

    def __init__(self, max_pairs: int = 1 << 16) -> None:
        self._max = max_pairs
        self._pairs: dict[bytes, tuple[str, AttrValue]] = {}

    def key(self, kvs: Iterable[KeyValue]) -> AttrKey:
        """Return the same key as :func:`attribute_key` (equal sets give equal keys)."""
        pairs = self._pairs
        out: list[tuple[str, AttrValue]] = []
        for kv in kvs:
            raw = kv.SerializeToString()
            pair = pairs.get(raw)
            if pair is None:
                if len(pairs) >= self._max:
                    pairs.clear()
                pair = pairs[raw] = (sys.intern(kv.key), value_of(kv.value))
            out.append(pair)
        out.sort()
        return tuple(out)


def lookup(attrs: Mapping[str, AttrValue], name: str) -> AttrValue:
    """Return attribute ``name``, falling back to its old names; ``None`` when absent."""
    found = attrs.get(name)
    if found is not None:
        return found
    for old in RENAMED.get(name, ()):
        found = attrs.get(old)
        if found is not None:
            return found
    return None


def node_of(attrs: Mapping[str, AttrValue]) -> str:
    """Return the topology node of a resource: its ``service.name``."""
    name = attrs.get(NODE_KEY)
    return str(name) if name else UNKNOWN_NODE


def status_code(attrs: Mapping[str, AttrValue]) -> int | None:
    """Return the HTTP response status code (an int or a numeric string), if any."""
    raw = lookup(attrs, "http.response.status_code")
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


def is_error(attrs: Mapping[str, AttrValue]) -> bool:
    """Whether a request failed: status ≥ 500, or ``error.type`` names a failure.

    Semconv also sets ``error.type`` to the status code for client 4xx responses; that is the
    callee answering, not failing, so an ``error.type`` equal to a status below 500 is no error.
    """
    status = status_code(attrs)
    if status is not None and status >= 500:
        return True
    error_type = attrs.get("error.type")
    if not error_type:
        return False
    return status is None or str(error_type) != str(status)


def to_base_unit(unit: str) -> float:
    """Return the factor that brings values of ``unit`` to base units (time → seconds)."""
    return _TIME_UNITS.get(unit.strip(), 1.0)
