"""Parameter validation shared by the executors."""

from __future__ import annotations

import pytest

from selfheal_kg.act.params import ParamSpec, check_identifier, check_target, validate
from selfheal_kg.errors import UnsafeParameter

SCHEMA = {
    "replicas": ParamSpec("int", required=True, minimum=1, maximum=10),
    "ratio": ParamSpec("float", default=0.5, minimum=0.0, maximum=1.0),
    "mode": ParamSpec("str", enum=("fast", "safe")),
    "label": ParamSpec("str", pattern=r"[a-z]+"),
    "dry": ParamSpec("bool"),
}


def test_valid_params_get_defaults() -> None:
    out = validate("scale", "checkout", {"replicas": 3, "mode": "safe"}, SCHEMA)
    assert out == {"replicas": 3, "ratio": 0.5, "mode": "safe"}


def test_int_is_accepted_as_float() -> None:
    out = validate("scale", "checkout", {"replicas": 1, "ratio": 1}, SCHEMA)
    assert out["ratio"] == 1.0 and isinstance(out["ratio"], float)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "'replicas' is required"),
        ({"replicas": 0}, ">= 1"),
        ({"replicas": 11}, "<= 10"),
        ({"replicas": "3"}, "must be int"),
        ({"replicas": True}, "must be int"),
        ({"replicas": 2.5}, "must be int"),
        ({"replicas": 2, "ratio": float("nan")}, "must be float"),
        ({"replicas": 2, "mode": "yolo"}, "one of"),
        ({"replicas": 2, "label": "abc; rm -rf /"}, "must match"),
        ({"replicas": 2, "label": "abc\n"}, "control character"),
        ({"replicas": 2, "dry": 1}, "must be bool"),
        ({"replicas": 2, "extra": 1}, "unknown parameter 'extra'"),
    ],
)
def test_bad_params_are_refused_with_a_reason(params: dict[str, object], reason: str) -> None:
    with pytest.raises(UnsafeParameter, match=reason):
        validate("scale", "checkout", params, SCHEMA)  # type: ignore[arg-type]


def test_long_string_is_refused() -> None:
    schema = {"note": ParamSpec("str")}
    with pytest.raises(UnsafeParameter, match="longer than"):
        validate("x", "t", {"note": "a" * 300}, schema)


@pytest.mark.parametrize(
    "target", ["checkout", "shop.checkout-1", "db:5432", "A", "a" * 128]
)
def test_safe_targets_pass(target: str) -> None:
    assert check_target("restart", target) == target


@pytest.mark.parametrize(
    "target",
    ["", "-rf", "x; touch /tmp/pwned", "$(id)", "`id`", "a b", "a\nb", "../etc", "a/b",
     "a" * 129, "ünï"],
)
def test_hostile_targets_are_refused(target: str) -> None:
    with pytest.raises(UnsafeParameter, match="target must match"):
        check_target("restart", target)


def test_validate_checks_the_target_too() -> None:
    with pytest.raises(UnsafeParameter):
        validate("scale", "x; reboot", {"replicas": 2}, SCHEMA)


@pytest.mark.parametrize("name", ["orders", "_t1", "a" * 63])
def test_identifiers(name: str) -> None:
    assert check_identifier("create_index", "db", "table", name) == name


@pytest.mark.parametrize("name", ["1abc", "a-b", 'x"; drop table y; --', "a" * 64, "", 3])
def test_bad_identifiers(name: object) -> None:
    with pytest.raises(UnsafeParameter, match="table must match"):
        check_identifier("create_index", "db", "table", name)  # type: ignore[arg-type]
