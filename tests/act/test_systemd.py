"""The systemd executor, against a FAKE systemctl.

systemd does not run on this machine, so these tests put tests/act/fakebin first on PATH: its
``systemctl`` is a small Python script that records its argv to $FAKEBIN_LOG and keeps unit
states in the JSON file $FAKEBIN_STATE. They check the exact command lines sent and the
snapshot/restore logic, not systemd itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.systemd import SystemdExecutor
from selfheal_kg.errors import ActionError, UnsafeParameter

FAKEBIN = Path(__file__).parent / "fakebin"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    log, state = tmp_path / "argv.log", tmp_path / "state.json"
    state.write_text(json.dumps({"checkout.service": "active", "cart.service": "failed"}))
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKEBIN_LOG", str(log))
    monkeypatch.setenv("FAKEBIN_STATE", str(state))
    return log, state


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_restart_sends_systemctl_restart(fake: tuple[Path, Path]) -> None:
    log, _ = fake
    report = SystemdExecutor().execute("systemd_restart", "checkout", {})
    assert report.ok
    assert calls(log) == [["systemctl", "restart", "--", "checkout.service"]]


def test_unit_map_is_used(fake: tuple[Path, Path]) -> None:
    log, _ = fake
    ex = SystemdExecutor(units={"checkout": "shop-checkout@1.service"})
    assert ex.execute("systemd_stop", "checkout", {}).ok
    assert calls(log)[-1] == ["systemctl", "stop", "--", "shop-checkout@1.service"]
    with pytest.raises(ActionError, match="no systemd unit"):
        ex.execute("systemd_stop", "cart", {})


def test_snapshot_reads_is_active(fake: tuple[Path, Path]) -> None:
    log, _ = fake
    ex = SystemdExecutor()
    assert ex.snapshot("systemd_stop", "checkout", {}) == {
        "unit": "checkout.service", "active": "active"}
    assert ex.snapshot("systemd_restart", "cart", {})["active"] == "failed"
    assert calls(log)[0] == ["systemctl", "is-active", "--", "checkout.service"]


def test_stop_then_restore_starts_it_again(fake: tuple[Path, Path]) -> None:
    log, state = fake
    ex = SystemdExecutor()
    point = ex.snapshot("systemd_stop", "checkout", {})
    ex.execute("systemd_stop", "checkout", {})
    assert json.loads(state.read_text())["checkout.service"] == "inactive"
    assert ex.restore("checkout", point).ok
    assert calls(log)[-1] == ["systemctl", "start", "--", "checkout.service"]
    assert json.loads(state.read_text())["checkout.service"] == "active"
    assert "already active" in ex.restore("checkout", point).detail


def test_failure_is_a_failed_report(
    fake: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKEBIN_FAIL", "1")
    report = SystemdExecutor().execute("systemd_restart", "checkout", {})
    assert not report.ok
    assert "failed" in report.detail


def test_hostile_target_never_reaches_systemctl(fake: tuple[Path, Path], tmp_path: Path) -> None:
    log, _ = fake
    pwned = tmp_path / "pwned"
    for hostile in (f"x; touch {pwned}", f"$(touch {pwned})", "--now", "a\nb"):
        with pytest.raises(UnsafeParameter):
            SystemdExecutor().execute("systemd_restart", hostile, {})
    assert calls(log) == []
    assert not pwned.exists()


def test_bad_action_and_params(fake: tuple[Path, Path]) -> None:
    with pytest.raises(ActionError, match="unknown action"):
        SystemdExecutor().execute("systemd_mask", "checkout", {})
    with pytest.raises(UnsafeParameter, match="timeout"):
        SystemdExecutor().execute("systemd_restart", "checkout", {"timeout": 9999})
    with pytest.raises(ValueError, match="unit name"):
        SystemdExecutor(units={"x": "a b.service"})


def test_missing_binary(fake: tuple[Path, Path], tmp_path: Path) -> None:
    ex = SystemdExecutor(systemctl=str(tmp_path / "no-systemctl"))
    with pytest.raises(ActionError, match="cannot execute"):
        ex.execute("systemd_restart", "checkout", {})


def test_is_an_executor() -> None:
    ex: Executor = SystemdExecutor()
    assert "systemd_restart" in ex.actions
