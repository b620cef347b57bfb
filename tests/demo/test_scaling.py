"""The scale_out / scale_in executor over a real balancer and real processes."""

from __future__ import annotations

import pytest

from selfheal_kg.demo.replicas import ReplicaSet
from selfheal_kg.demo.scaling import ReplicaScaler, outlier
from selfheal_kg.errors import ActionError, UnsafeParameter


def test_scale_out_then_restore_to_the_rollback_point(replica_set: ReplicaSet) -> None:
    scaler = ReplicaScaler({"svc": replica_set})
    before = scaler.snapshot("scale_out", "svc", {"increment": 2})
    assert before == {"replicas": 2, "members": '["svc", "svc-2"]'}
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
    with pytest.raises(ActionError, match="not behind a balancer"):
        scaler.restore("inventory", {"replicas": 2})


def test_restoring_a_scale_out_retires_the_added_members_not_a_restored_one(
    replica_set: ReplicaSet,
) -> None:
    # the recovery chain: drain svc-2, add a spare (svc-3), restore svc-2's traffic; putting
    # the scale-out back retires svc-3 even though three instances serve and two did before
    scaler = ReplicaScaler({"svc": replica_set})
    assert scaler.execute("lb_drain", "svc", {"instance": "svc-2"}).ok
    point = scaler.snapshot("scale_out", "svc", {"increment": 1})
    assert point == {"replicas": 1, "members": '["svc", "svc-2"]'}
    assert scaler.execute("scale_out", "svc", {"increment": 1}).ok
    assert scaler.execute("lb_restore", "svc", {}).ok
    assert replica_set.members() == {"svc": 100, "svc-2": 100, "svc-3": 100}
    report = scaler.restore("svc", point)
    assert report.ok
    assert report.detail == "svc: back to its members ['svc', 'svc-2'] (-svc-3)"
    assert replica_set.members() == {"svc": 100, "svc-2": 100}


def test_a_restore_without_a_usable_state_is_refused(replica_set: ReplicaSet) -> None:
    scaler = ReplicaScaler({"svc": replica_set})
    with pytest.raises(ActionError, match="'members' is not JSON"):
        scaler.restore("svc", {"replicas": 2, "members": "svc,svc-2"})
    with pytest.raises(ActionError, match="not a list of names"):
        scaler.restore("svc", {"replicas": 2, "members": "[1, 2]"})
    with pytest.raises(ActionError, match="integer 'replicas'"):
        scaler.restore("svc", {"replicas": "two"})
    with pytest.raises(ActionError, match="integer 'weight'"):
        scaler.restore("svc", {"instance": "svc-2", "weight": "full"})


def _view(weights: dict[str, int], stats: dict[str, tuple[int, int, float]]) -> dict[str, object]:
    return {"weights": weights, "stats": {
        n: {"requests": r, "errors": e, "error_ratio": e / r if r else 0.0, "mean_ms": m}
        for n, (r, e, m) in stats.items()}}


def test_the_outlier_is_the_one_instance_failing_while_another_serves_well() -> None:
    view = _view({"co": 100, "co-2": 100}, {"co": (40, 0, 20.0), "co-2": (40, 40, 3.0)})
    name, why = outlier(view)
    assert name == "co-2" and "100%" in why


def test_the_outlier_can_be_the_one_slow_instance() -> None:
    view = _view({"co": 100, "co-2": 100, "co-3": 100},
                 {"co": (40, 0, 20.0), "co-2": (40, 0, 900.0), "co-3": (30, 0, 25.0)})
    assert outlier(view)[0] == "co-2"


@pytest.mark.parametrize(
    ("weights", "stats", "reason"),
    [
        # every instance fails alike (a bad configuration): draining one helps nothing
        ({"co": 100, "co-2": 100}, {"co": (40, 40, 3.0), "co-2": (40, 39, 3.0)}, "alike"),
        # only one instance serves: draining it would leave nothing
        ({"co": 100, "co-2": 0}, {"co": (40, 40, 3.0), "co-2": (0, 0, 0.0)}, "serving"),
        # too few answers to judge
        ({"co": 100, "co-2": 100}, {"co": (2, 0, 3.0), "co-2": (3, 3, 3.0)}, "too few"),
        # slower, but not enough to stand out
        ({"co": 100, "co-2": 100}, {"co": (40, 0, 30.0), "co-2": (40, 0, 80.0)}, "alike"),
    ],
)
def test_no_outlier_when_no_single_instance_stands_out(
    weights: dict[str, int], stats: dict[str, tuple[int, int, float]], reason: str
) -> None:
    name, why = outlier(_view(weights, stats))
    assert name is None and reason in why


def test_drain_restart_and_restore_a_named_instance(replica_set: ReplicaSet) -> None:
    scaler = ReplicaScaler({"svc": replica_set})
    assert scaler.applies("scale_out", "svc") is None
    assert scaler.applies("scale_out", "other") == "other does not run behind a load balancer"
    point = scaler.snapshot("lb_drain", "svc", {"instance": "svc-2"})
    assert point == {"instance": "svc-2", "weight": 100}
    assert scaler.execute("lb_drain", "svc", {"instance": "svc-2"}).ok
    assert replica_set.members() == {"svc": 100, "svc-2": 0}
    before = replica_set.pid("svc-2")
    restart_point = scaler.snapshot("restart_instance", "svc", {})
    assert restart_point == {"instance": "svc-2", "pid": before}
    report = scaler.execute("restart_instance", "svc", {})
    assert report.ok and replica_set.pid("svc-2") not in (None, before)
    # scaling out counts serving instances: the drained one does not serve
    assert scaler.execute("scale_out", "svc", {"increment": 1}).ok
    assert replica_set.members() == {"svc": 100, "svc-2": 0, "svc-3": 100}
    restore_point = scaler.snapshot("lb_restore", "svc", {})
    assert scaler.execute("lb_restore", "svc", {}).ok
    assert replica_set.members()["svc-2"] == 100
    # the rollback of a restore drains again; of a drain, puts the weight back
    assert scaler.restore("svc", restore_point).ok
    assert replica_set.members()["svc-2"] == 0
    assert scaler.restore("svc", point).ok
    assert replica_set.members()["svc-2"] == 100
    assert scaler.restore("svc", restart_point).ok  # a restart is not undone: nothing to do


def test_nothing_to_drain_is_refused_with_the_reason(replica_set: ReplicaSet) -> None:
    scaler = ReplicaScaler({"svc": replica_set})
    reason = scaler.applies("lb_drain", "svc")
    assert reason is not None and reason.startswith("nothing to drain on svc")
    with pytest.raises(ActionError, match="nothing to drain"):
        scaler.execute("lb_drain", "svc", {})
    with pytest.raises(ActionError, match="no drained instance"):
        scaler.execute("restart_instance", "svc", {})


def test_an_instance_that_just_went_bad_stands_out_before_its_window_fills() -> None:
    # 3 s of failures in a 10 s window: 30 % of its answers, none of the other's
    view = _view({"co": 100, "co-2": 100}, {"co": (40, 0, 20.0), "co-2": (40, 12, 3.0)})
    assert outlier(view)[0] == "co-2"
    # the other instance failing a little too: they fail alike, nothing to drain
    view = _view({"co": 100, "co-2": 100}, {"co": (40, 4, 20.0), "co-2": (40, 12, 3.0)})
    assert outlier(view)[0] is None
