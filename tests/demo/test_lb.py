"""The shop's load balancer: its pool of weighted backends and the admin changes it accepts."""

from __future__ import annotations

import sys
from collections import Counter

import pytest

from selfheal_kg.paths import shipped

# the shop's scripts are not a package: import them as service.py does
sys.path.insert(0, str(shipped("demo") / "shop"))
from lb import Pool

A, B = "http://127.0.0.1:9001/", "http://127.0.0.1:9002/"


def test_traffic_follows_the_weights_and_a_drained_backend_gets_none() -> None:
    pool = Pool({"checkout": A, "checkout-2": B})
    pool.apply({"instance": "checkout-2", "weight": 0})
    firsts = Counter(pool.order()[0] for _ in range(200))
    assert firsts == {A: 200}
    assert pool.order() == [A], "a drained backend is not even a fallback"


def test_both_weighted_backends_are_used_and_each_is_the_others_fallback() -> None:
    pool = Pool({"checkout": A, "checkout-2": B})
    firsts = Counter(pool.order()[0] for _ in range(400))
    assert firsts[A] > 100 and firsts[B] > 100
    assert sorted(pool.order()) == [A, B]


def test_a_backend_is_added_weighted_and_removed() -> None:
    pool = Pool({"checkout": A})
    pool.apply({"instance": "checkout-2", "url": B, "weight": 50})
    assert pool.view()["weights"] == {"checkout": 100, "checkout-2": 50}
    pool.apply({"instance": "checkout-2", "remove": True})
    assert pool.view() == {"weights": {"checkout": 100}, "backends": {"checkout": A}}


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"instance": "checkout", "weight": -1}, "weight"),
        ({"instance": "checkout", "weight": 1001}, "weight"),
        ({"instance": "checkout", "weight": True}, "weight"),
        ({"instance": "checkout", "weight": "10"}, "weight"),
        ({"instance": "nobody", "weight": 10}, "no backend"),
        ({"instance": "Bad Name;rm", "weight": 10}, "instance"),
        ({"instance": "x", "url": "http://evil.example:80/"}, "127.0.0.1"),
        ({"instance": "x", "url": "file:///etc/passwd"}, "127.0.0.1"),
        ({"instance": "checkout", "shell": "ls"}, "unknown fields"),
        ({"instance": "nobody", "remove": True}, "no backend"),
    ],
)
def test_bad_admin_changes_are_refused_naming_the_problem(
    spec: dict[str, object], reason: str
) -> None:
    pool = Pool({"checkout": A})
    with pytest.raises(ValueError, match=reason):
        pool.apply(spec)
    assert pool.view()["weights"] == {"checkout": 100}
