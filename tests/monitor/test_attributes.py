"""Attribute values, old and new semantic-convention names, errors, units."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from selfheal_kg.monitor.attributes import (
    KeyCache,
    attribute_key,
    attributes,
    is_error,
    lookup,
    node_of,
    to_base_unit,
)


def test_values_are_hashable_python_values() -> None:
    kvs = [
        KeyValue(key="s", value=AnyValue(string_value="x")),
        KeyValue(key="a", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)]))),
        KeyValue(
            key="m",
            value=AnyValue(
                kvlist_value=KeyValueList(
                    values=[KeyValue(key="k", value=AnyValue(bool_value=True))]
                )
            ),
        ),
        KeyValue(key="empty", value=AnyValue()),
    ]
    assert attributes(kvs) == {"s": "x", "a": (1,), "m": (("k", True),), "empty": None}
    assert attribute_key(kvs) == attribute_key(reversed(kvs))
    hash(attribute_key(kvs))


def test_new_names_fall_back_to_old_ones() -> None:
    assert lookup({"db.system": "redis"}, "db.system.name") == "redis"
    assert lookup({"db.system": "redis", "db.system.name": "pg"}, "db.system.name") == "pg"
    assert lookup({}, "peer.service") is None
    assert node_of({"service.name": "api"}) == "api"
    assert node_of({}) == "unknown_service"


@pytest.mark.parametrize(
    ("attrs", "failed"),
    [
        ({"http.response.status_code": 503}, True),
        ({"http.status_code": "500"}, True),
        ({"http.response.status_code": 200}, False),
        ({"error.type": "timeout"}, True),
        ({"http.response.status_code": 404, "error.type": "404"}, False),
        ({"http.response.status_code": 404, "error.type": "ConnectionReset"}, True),
        ({}, False),
    ],
)
def test_is_error(attrs: dict[str, object], failed: bool) -> None:
    assert is_error(attrs) is failed  # type: ignore[arg-type]


def test_time_units_become_seconds() -> None:
    assert to_base_unit("ms") == 1e-3
    assert to_base_unit("us") == 1e-6
    assert to_base_unit("min") == 60
    assert to_base_unit("By") == 1.0


def _mixed() -> list[KeyValue]:
    return [
        KeyValue(key="http.route", value=AnyValue(string_value="/a")),
        KeyValue(key="code", value=AnyValue(int_value=500)),
        KeyValue(key="ok", value=AnyValue(bool_value=False)),
        KeyValue(key="ratio", value=AnyValue(double_value=0.5)),
        KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00")),
        KeyValue(key="list", value=AnyValue(array_value=ArrayValue(values=[AnyValue()]))),
        KeyValue(key="empty", value=AnyValue()),
    ]


def test_key_cache_gives_the_same_keys_as_attribute_key() -> None:
    cache = KeyCache()
    kvs = _mixed()
    for _ in range(2):  # first read, then from the cache
        assert cache.key(kvs) == attribute_key(kvs)
        assert cache.key(reversed(kvs)) == attribute_key(kvs)
    assert cache.key([]) == attribute_key([]) == ()


def test_key_cache_tells_values_of_different_types_apart() -> None:
    cache = KeyCache()
    as_int = [KeyValue(key="code", value=AnyValue(int_value=1))]
    as_bool = [KeyValue(key="code", value=AnyValue(bool_value=True))]
    as_str = [KeyValue(key="code", value=AnyValue(string_value="1"))]
    keys = [cache.key(kvs) for kvs in (as_int, as_bool, as_str)]
    assert keys == [attribute_key(kvs) for kvs in (as_int, as_bool, as_str)]
    assert [type(k[0][1]) for k in keys] == [int, bool, str]


def test_key_cache_shares_pairs_between_keys_and_stays_bounded() -> None:
    cache = KeyCache(max_pairs=3)
    get = KeyValue(key="method", value=AnyValue(string_value="GET"))
    first = cache.key([get, KeyValue(key="route", value=AnyValue(string_value="/a"))])
    second = cache.key([get, KeyValue(key="route", value=AnyValue(string_value="/b"))])
    assert first[0] is second[0]  # one ("method", "GET") pair for both streams
    for i in range(10):
        key = cache.key([KeyValue(key="route", value=AnyValue(string_value=f"/{i}"))])
        assert key == (("route", f"/{i}"),)
    assert len(cache._pairs) <= 3
