"""The scale_out / scale_in executor over a real balancer and real processes."""

from __future__ import annotations

import pytest

from selfheal_kg.demo.replicas import ReplicaSet
from selfheal_kg.demo.scaling import ReplicaScaler
from selfheal_kg.errors import ActionError, UnsafeParameter


def test_scale_out_then_restore_to_the_rollback_point(replica_set: ReplicaSet) -> None:
    scaler = ReplicaScaler({"svc": replica_set})
    before = scaler.snapshot("scale_out", "svc", {"increment": 2})
    assert before == {"replicas": 2}
    report = scaler.execute("scale_out", "svc", {"increment": 2})
    assert report.ok and "2 -> 4" in report.detail
    assert replica_set.count() == 4
    assert scaler.restore("svc", before).ok
    assert replica_set.count() == 2


def test_scale_in_defaults_to_the_declared_instances(replica_set: ReplicaSet) -> None:
    scaler = ReplicaScaler({"svc": replica_set})
    scaler.execute("scale_out", "svc", {})
    assert replica_set.count() == 3
    report = scaler.execute("scale_in", "svc", {})
    assert report.ok and "3 -> 2" in report.detail


def test_unknown_targets_actions_and_bad_params_are_refused() -> None:
    scaler = ReplicaScaler({})
    with pytest.raises(ActionError, match="not behind a balancer"):
        scaler.execute("scale_out", "inventory", {})
    with pytest.raises(ActionError, match="unknown action"):
        scaler.execute("scale", "inventory", {})
    with pytest.raises(UnsafeParameter):
        scaler.execute("scale_out", "inventory", {"increment": 50})
    with pytest.raises(UnsafeParameter):
        scaler.execute("scale_out", "inventory; rm -rf /", {})
    with pytest.raises(ActionError, match="integer 'replicas'"):
        scaler.restore("inventory", {"replicas": "two"})
