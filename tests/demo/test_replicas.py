"""Replicas behind the shop's real load balancer: scaled out and in, traffic still served."""

from __future__ import annotations

import urllib.request

import pytest

from selfheal_kg.demo.replicas import ReplicaSet, instance_name
from selfheal_kg.errors import ActionError


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:
        resp.read()
        return int(resp.status)


def test_instance_names_keep_the_first_under_the_service_name() -> None:
    assert [instance_name("checkout", i) for i in (1, 2, 3)] == [
        "checkout", "checkout-2", "checkout-3"
    ]


def test_scale_out_adds_healthy_instances_and_scale_in_drains_and_stops_them(
    replica_set: ReplicaSet,
) -> None:
    assert replica_set.members() == {"svc": 100, "svc-2": 100}
    assert replica_set.scale_to(4) == ["+svc-3", "+svc-4"]
    assert replica_set.count() == 4
    views = replica_set.admin()["backends"]
    assert all(get(url) == 200 for url in views.values()), "every member answers"
    assert get(replica_set.balancer_url) == 200
    assert replica_set.scale_to(2) == ["-svc-4", "-svc-3"]
    assert replica_set.members() == {"svc": 100, "svc-2": 100}
    assert get(replica_set.balancer_url) == 200


def test_scaling_outside_the_bounds_is_refused(replica_set: ReplicaSet) -> None:
    with pytest.raises(ActionError, match=r"\[2, 4\]"):
        replica_set.scale_to(1)
    with pytest.raises(ActionError, match=r"\[2, 4\]"):
        replica_set.scale_to(5)
    assert replica_set.count() == 2


def test_a_refused_admin_change_is_an_action_error_with_the_reason(
    replica_set: ReplicaSet,
) -> None:
    with pytest.raises(ActionError, match="weight must be an integer"):
        replica_set.admin({"instance": "svc", "weight": 5000})
    assert replica_set.members()["svc"] == 100
