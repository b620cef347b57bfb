"""The process supervisor, with real child processes."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfheal_kg.act.executor import Executor
from selfheal_kg.act.process import ProcessSpec, ProcessSupervisor
from selfheal_kg.clock import FakeClock
from selfheal_kg.errors import ActionError, UnsafeParameter

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
# A parent that starts a grandchild, prints its pid and sleeps.
SPAWNER = (
    sys.executable,
    "-c",
    "import subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(p.pid, flush=True)\n"
    "time.sleep(60)\n",
)


def alive(pid: int) -> bool:
    """Return whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(cond: object, timeout: float = 5.0) -> bool:
    """Poll ``cond()`` until true (real processes need real time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[ProcessSupervisor]:
    supervisor = ProcessSupervisor(FakeClock(), log_dir=tmp_path / "logs")
    yield supervisor
    supervisor.stop_all(timeout=2)


def test_start_then_kill(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    pid = sup.start("sleeper")
    assert sup.is_running("sleeper")
    assert sup.pid("sleeper") == pid
    sup.kill("sleeper")
    assert not sup.is_running("sleeper")
    assert sup.pid("sleeper") is None
    assert sup.returncode("sleeper") == -9
    assert not alive(pid)


def test_start_twice_keeps_one_process(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    assert sup.start("sleeper") == sup.start("sleeper")


def test_restart_brings_a_new_pid(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    first = sup.start("sleeper")
    report = sup.execute("restart", "sleeper", {"timeout": 3})
    second = sup.pid("sleeper")
    assert report.ok
    assert second is not None and second != first
    assert not alive(first)
    assert str(second) in report.detail


def test_restart_after_a_crash_starts_it_again(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    crashed = sup.start("sleeper")
    sup.kill("sleeper")
    report = sup.execute("restart", "sleeper", {})
    assert report.ok
    assert sup.is_running("sleeper")
    assert sup.pid("sleeper") != crashed


def test_stop_escalates_to_sigkill(sup: ProcessSupervisor) -> None:
    stubborn = (
        sys.executable,
        "-c",
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n",
    )
    sup.add(ProcessSpec("stubborn", stubborn))
    pid = sup.start("stubborn")
    assert wait_until(lambda: "ready" in sup.log_path("stubborn").read_text())
    sup.stop("stubborn", timeout=0.3)
    assert sup.returncode("stubborn") == -9
    assert not alive(pid)


def test_env_and_log_file(sup: ProcessSupervisor, tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import os; print(os.environ['SHOP_GREETING'])")
    sup.add(ProcessSpec("echo", argv, env={"SHOP_GREETING": "hello-shop"}, cwd=tmp_path))
    sup.start("echo")
    assert wait_until(lambda: not sup.is_running("echo"))
    assert sup.log_path("echo").read_text().strip() == "hello-shop"
    assert sup.returncode("echo") == 0


def test_unknown_target_is_refused(sup: ProcessSupervisor) -> None:
    with pytest.raises(ActionError, match="not a supervised process"):
        sup.execute("restart", "nobody", {})
    with pytest.raises(ActionError):
        sup.snapshot("restart", "nobody", {})


def test_unknown_action_is_refused(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    with pytest.raises(ActionError, match="unknown action"):
        sup.execute("rm", "sleeper", {})
    assert not sup.is_running("sleeper")


def test_shell_metacharacters_in_target_run_nothing(sup: ProcessSupervisor, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    hostile = f"x; touch {pwned}"
    sup.add(ProcessSpec("x", SLEEPER))
    for action in ("restart", "start", "stop"):
        with pytest.raises(ActionError):
            sup.execute(action, hostile, {})
    with pytest.raises(ActionError):
        sup.restore(hostile, {"running": True})
    with pytest.raises(ValueError, match="not"):
        ProcessSpec(hostile, SLEEPER)
    time.sleep(0.2)  # a forked shell would have had time to create the file
    assert not pwned.exists()
    assert not sup.is_running("x")


def test_bad_timeout_parameter_is_refused(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    for bad in ("5; reboot", -1, 10_000, True):
        with pytest.raises(UnsafeParameter):
            sup.execute("start", "sleeper", {"timeout": bad})
    assert not sup.is_running("sleeper")


def test_snapshot_and_restore(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    before = sup.snapshot("stop", "sleeper", {})
    assert before == {"running": False, "pid": 0}
    sup.start("sleeper")
    running = sup.snapshot("stop", "sleeper", {})
    assert running["running"] is True and running["pid"] == sup.pid("sleeper")
    assert sup.restore("sleeper", before).ok
    assert not sup.is_running("sleeper")
    assert sup.restore("sleeper", running).ok
    assert sup.is_running("sleeper")
    with pytest.raises(ActionError):
        sup.restore("sleeper", {})


def test_start_fails_health_check_when_process_exits(sup: ProcessSupervisor) -> None:
    argv = (sys.executable, "-c", "raise SystemExit(3)")
    sup.add(ProcessSpec("dies", argv, health_url="http://127.0.0.1:9/health"))
    with pytest.raises(ActionError, match="not healthy"):
        sup.execute("start", "dies", {"timeout": 3})


def test_missing_program_is_an_action_error(sup: ProcessSupervisor, tmp_path: Path) -> None:
    sup.add(ProcessSpec("ghost", (str(tmp_path / "no-such-program"),)))
    with pytest.raises(ActionError, match="cannot execute"):
        sup.start("ghost")


def test_duplicate_name_is_refused(sup: ProcessSupervisor) -> None:
    sup.add(ProcessSpec("sleeper", SLEEPER))
    with pytest.raises(ValueError, match="already"):
        sup.add(ProcessSpec("sleeper", SLEEPER))


def test_stop_all_leaves_no_child_alive(sup: ProcessSupervisor) -> None:
    for i in range(3):
        sup.add(ProcessSpec(f"spawner{i}", SPAWNER))
    pids = [sup.start(f"spawner{i}") for i in range(3)]
    logs = [sup.log_path(f"spawner{i}") for i in range(3)]
    assert wait_until(lambda: all(log.read_text().strip() for log in logs))
    grandchildren = [int(log.read_text().split()[0]) for log in logs]
    assert all(alive(p) for p in pids + grandchildren)
    sup.stop_all(timeout=2)
    assert not any(sup.is_running(f"spawner{i}") for i in range(3))
    assert wait_until(lambda: not any(alive(p) for p in pids + grandchildren))


def test_is_an_executor(sup: ProcessSupervisor) -> None:
    executor: Executor = sup
    assert executor.actions == frozenset({"restart", "start", "stop"})
