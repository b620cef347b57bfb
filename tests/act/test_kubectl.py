"""The kubectl executor, against a FAKE kubectl.

No Kubernetes cluster runs on this machine, so these tests put tests/act/fakebin first on
PATH: its ``kubectl`` is a small Python script that records its argv to $FAKEBIN_LOG and keeps
deployments (replicas, revision, container resources) in the JSON file $FAKEBIN_STATE. They
check the exact command lines sent and the snapshot/restore logic, not Kubernetes itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.kubectl import KubectlExecutor
from selfheal_kg.errors import ActionError, UnsafeParameter

FAKEBIN = Path(__file__).parent / "fakebin"
RESOURCES = {"app": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m"}}}


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    log, state = tmp_path / "argv.log", tmp_path / "state.json"
    deployments = {
        "shop/checkout": {"replicas": 2, "revision": 7, "resources": RESOURCES},
        "default/cart": {"replicas": 1, "revision": 1, "resources": {}},
    }
    state.write_text(json.dumps(deployments))
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBIN_LOG", str(log))
    monkeypatch.setenv("FAKEBIN_STATE", str(state))
    return log, state


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def deployment(state: Path, key: str) -> Any:
    return json.loads(state.read_text())[key]


def executor() -> KubectlExecutor:
    return KubectlExecutor(deployments={"checkout": "shop/checkout", "cart": "cart"})


def test_scale_sends_the_command_and_restore_scales_back(fake: tuple[Path, Path]) -> None:
    log, state = fake
    ex = executor()
    point = ex.snapshot("scale", "checkout", {"replicas": 5})
    assert point == {"replicas": 2}
    assert calls(log)[0] == ["kubectl", "get", "deployment", "checkout", "-n", "shop", "-o",
                             "jsonpath={.spec.replicas}"]
    assert ex.execute("scale", "checkout", {"replicas": 5}).ok
    assert calls(log)[-1] == ["kubectl", "scale", "deployment/checkout", "--replicas=5",
                              "-n", "shop"]
    assert deployment(state, "shop/checkout")["replicas"] == 5
    assert ex.restore("checkout", point).ok
    assert deployment(state, "shop/checkout")["replicas"] == 2


def test_scale_by_increment(fake: tuple[Path, Path]) -> None:
    _, state = fake
    assert executor().execute("scale", "checkout", {"increment": 2}).ok
    assert deployment(state, "shop/checkout")["replicas"] == 4


def test_scale_limits(fake: tuple[Path, Path]) -> None:
    ex = KubectlExecutor(deployments={"checkout": "shop/checkout"}, max_replicas=3)
    with pytest.raises(UnsafeParameter, match="<= 3"):
        ex.execute("scale", "checkout", {"replicas": 4})
    with pytest.raises(UnsafeParameter, match="outside"):
        ex.execute("scale", "checkout", {"increment": 2})
    with pytest.raises(UnsafeParameter, match="exactly one"):
        ex.execute("scale", "checkout", {})
    with pytest.raises(UnsafeParameter, match="must be int"):
        ex.execute("scale", "checkout", {"replicas": "5 --all"})


def test_rollout_restart_and_undo(fake: tuple[Path, Path]) -> None:
    log, _ = fake
    ex = executor()
    point = ex.snapshot("rollout_restart", "checkout", {})
    assert point == {"revision": 7}
    assert ex.execute("rollout_restart", "checkout", {}).ok
    assert calls(log)[-1] == ["kubectl", "rollout", "restart", "deployment/checkout", "-n", "shop"]
    assert ex.restore("checkout", point).ok
    assert calls(log)[-1] == ["kubectl", "rollout", "undo", "deployment/checkout",
                              "--to-revision=7", "-n", "shop"]


def test_set_resources_and_restore(fake: tuple[Path, Path]) -> None:
    log, state = fake
    ex = executor()
    params = {"container": "app", "limits.memory": "512Mi", "requests.memory": "128Mi"}
    point = ex.snapshot("set_resources", "checkout", params)
    assert point == {"container": "app", "limits.cpu": "500m", "limits.memory": "256Mi",
                     "requests.cpu": "100m", "requests.memory": ""}
    assert ex.execute("set_resources", "checkout", params).ok
    assert calls(log)[-1] == ["kubectl", "set", "resources", "deployment/checkout", "-c", "app",
                              "--limits=memory=512Mi", "--requests=memory=128Mi", "-n", "shop"]
    assert ex.restore("checkout", point).ok
    assert deployment(state, "shop/checkout")["resources"] == RESOURCES


def test_bad_quantities_and_container_are_refused(fake: tuple[Path, Path]) -> None:
    log, _ = fake
    ex = executor()
    for params in (
        {"container": "app", "limits.cpu": "1,memory=64Ei"},
        {"container": "app", "limits.cpu": "$(id)"},
        {"container": "App; ls", "limits.cpu": "1"},
        {"container": "app"},
    ):
        with pytest.raises(UnsafeParameter):
            ex.execute("set_resources", "checkout", params)
    assert calls(log) == []


def test_target_names_the_deployment_without_a_map(fake: tuple[Path, Path]) -> None:
    log, _ = fake
    assert KubectlExecutor().execute("rollout_restart", "cart", {}).ok
    assert calls(log)[-1] == ["kubectl", "rollout", "restart", "deployment/cart", "-n", "default"]
    with pytest.raises(UnsafeParameter, match="DNS-1123"):
        KubectlExecutor().execute("rollout_restart", "Cart_1", {})


def test_hostile_target_never_reaches_kubectl(fake: tuple[Path, Path], tmp_path: Path) -> None:
    log, _ = fake
    pwned = tmp_path / "pwned"
    for hostile in (f"x; touch {pwned}", f"`touch {pwned}`", "--all", "a/b"):
        with pytest.raises(UnsafeParameter):
            KubectlExecutor().execute("rollout_restart", hostile, {})
    assert calls(log) == []
    assert not pwned.exists()


def test_unknown_deployment_fails(fake: tuple[Path, Path]) -> None:
    ex = KubectlExecutor(deployments={"ghost": "ghost"})
    with pytest.raises(ActionError, match="kubectl get failed"):
        ex.snapshot("scale", "ghost", {})
    assert not ex.execute("scale", "ghost", {"replicas": 1}).ok
    with pytest.raises(ActionError, match="no deployment"):
        ex.execute("scale", "checkout", {"replicas": 1})


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="namespace"):
        KubectlExecutor(namespace="Prod NS")
    with pytest.raises(ValueError, match="DNS-1123"):
        KubectlExecutor(deployments={"x": "shop/Bad Name"})


def test_is_an_executor() -> None:
    ex: Executor = KubectlExecutor()
    assert ex.actions == frozenset({"scale", "rollout_restart", "set_resources"})
