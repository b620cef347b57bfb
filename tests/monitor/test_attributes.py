"""Attribute values, old and new semantic-convention names, errors, units."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from selfheal_kg.monitor.attributes import (
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
