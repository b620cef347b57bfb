"""Supervise local OS processes, and expose start/stop/restart as an Executor.

Processes are started without a shell, in their own session (so a stop reaches the whole
process group), with stdout and stderr appended to ``<log_dir>/<name>.log``. A target is
only ever looked up among the added specs: nothing is built from a target name.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.clock import Clock
from selfheal_kg.errors import ActionError, UnsafeParameter
from selfheal_kg.model import FactValue

# Names become log file names and appear in reports: keep them to a safe, short alphabet.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to run one supervised process.

    Attributes:
        name: unique name, ``[A-Za-z0-9][A-Za-z0-9_.-]*`` (at most 64 characters).
        argv: the command, program first; never passed through a shell.
        env: variables laid over the supervisor's own environment.
        cwd: working directory, or ``None`` for the supervisor's.
        health_url: an HTTP URL that answers 2xx once the process is ready.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    health_url: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"process name {self.name!r} is not [A-Za-z0-9][A-Za-z0-9_.-]*")
        if not self.argv:
            raise ValueError(f"process {self.name!r}: argv is empty")


@dataclass(slots=True)
class _Slot:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float | None = None


class ProcessSupervisor:
    """Start, stop, kill and restart named local processes; an Executor for them.

    Args:
        clock: stamps start times (reports and snapshots).
        log_dir: where ``<name>.log`` files go; a fresh temporary directory when ``None``.
    """

    actions = frozenset({"restart", "start", "stop"})

    def __init__(self, clock: Clock, log_dir: Path | None = None) -> None:
        self._clock = clock
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="selfheal-proc-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.RLock()

    # -- supervision -------------------------------------------------------------------------

    def add(self, spec: ProcessSpec) -> None:
        """Register ``spec`` (not started); raise ``ValueError`` if the name is taken."""
        with self._lock:
            if spec.name in self._slots:
                raise ValueError(f"process {spec.name!r} is already supervised")
            self._slots[spec.name] = _Slot(spec)

    def names(self) -> tuple[str, ...]:
        """Return the supervised names, in the order they were added."""
        with self._lock:
            return tuple(self._slots)

    def spec(self, name: str) -> ProcessSpec:
        """Return the spec of ``name``; raise ``KeyError`` when unknown."""
        return self._slot(name).spec

    def start(self, name: str) -> int:
        """Start ``name`` unless it runs already; return its pid."""
        with self._lock:
            slot = self._slot(name)
            if slot.proc is not None and slot.proc.poll() is None:
                return slot.proc.pid
            slot.proc = self._spawn(slot.spec)
            slot.started_at = self._clock.now()
            return slot.proc.pid

    def stop(self, name: str, timeout: float = 5.0) -> None:
        """Stop ``name``: SIGTERM to its process group, SIGKILL after ``timeout`` seconds."""
        with self._lock:
            proc = self._slot(name).proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
        # Children that ignored SIGTERM or outlived their leader go too (the group id cannot
        # be reused while any of them lives).
        _signal_group(proc.pid, signal.SIGKILL)

    def kill(self, name: str) -> None:
        """SIGKILL ``name``'s process group at once (a crash, for fault injection)."""
        with self._lock:
            proc = self._slot(name).proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5.0)

    def restart(self, name: str, timeout: float = 5.0) -> int:
        """Stop then start ``name``; return the new pid."""
        with self._lock:
            self.stop(name, timeout)
            return self.start(name)

    def is_running(self, name: str) -> bool:
        """Return whether ``name``'s process is alive."""
        with self._lock:
            proc = self._slot(name).proc
            return proc is not None and proc.poll() is None

    def pid(self, name: str) -> int | None:
        """Return the pid of ``name`` while it runs, else ``None``."""
        with self._lock:
            proc = self._slot(name).proc
            return proc.pid if proc is not None and proc.poll() is None else None

    def returncode(self, name: str) -> int | None:
        """Return the exit code of ``name``'s last process (negative: killed by a signal)."""
        with self._lock:
            proc = self._slot(name).proc
            return None if proc is None else proc.poll()

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every supervised process, the last added first."""
        for name in reversed(self.names()):
            self.stop(name, timeout)

    def log_path(self, name: str) -> Path:
        """Return the file ``name``'s stdout and stderr are appended to."""
        return self.log_dir / f"{self._slot(name).spec.name}.log"

    def wait_healthy(self, name: str, timeout: float = 10.0) -> bool:
        """Poll ``name``'s health URL until it answers 2xx; return ``False`` on timeout or exit.

        Real processes take real time to come up, so this waits on the monotonic clock.
        """
        url = self._slot(name).spec.health_url
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running(name):
                return False
            if url is None or _answers(url):
                return True
            time.sleep(0.05)
        return False

    # -- Executor port -----------------------------------------------------------------------

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return ``{"running": bool, "pid": int}`` of ``target`` (pid 0 when not running)."""
        self._check(action, target)
        return {"running": self.is_running(target), "pid": self.pid(target) or 0}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Carry out ``start``, ``stop`` or ``restart`` on a supervised process.

        Params (all optional): ``timeout`` (seconds for stop and for the health check).

        Raises:
            ActionError: unknown action or target, or the process did not come up healthy.
            UnsafeParameter: a parameter outside its allowed range.
        """
        self._check(action, target)
        timeout = _timeout_param(action, target, params)
        if action == "stop":
            self.stop(target, timeout)
            return ActionReport(True, f"stopped {target}")
        old = self.pid(target)
        pid = self.restart(target, timeout) if action == "restart" else self.start(target)
        if not self.wait_healthy(target, timeout):
            raise ActionError(action, target, f"pid {pid} not healthy within {timeout:g} s")
        was = f" (was {old})" if old else ""
        return ActionReport(True, f"{action} {target}: pid {pid}{was}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Start or stop ``target`` so that its running state matches ``state``."""
        self._check("restore", target)
        want = state.get("running")
        if not isinstance(want, bool):
            raise ActionError("restore", target, "state has no boolean 'running'")
        if want == self.is_running(target):
            return ActionReport(True, f"{target} already {'running' if want else 'stopped'}")
        return self.execute("start" if want else "stop", target, {})

    # -- internals ---------------------------------------------------------------------------

    def _slot(self, name: str) -> _Slot:
        with self._lock:
            try:
                return self._slots[name]
            except KeyError:
                raise KeyError(f"no supervised process named {name!r}") from None

    def _check(self, action: str, target: str) -> None:
        if action != "restore" and action not in self.actions:
            raise ActionError(action, target, f"unknown action; known: {sorted(self.actions)}")
        with self._lock:
            if target not in self._slots:
                raise ActionError(action, target, "not a supervised process")

    def _spawn(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        env = {**os.environ, **spec.env}
        with (self.log_dir / f"{spec.name}.log").open("ab") as log:
            try:
                return subprocess.Popen(
                    list(spec.argv),
                    shell=False,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=spec.cwd,
                )
            except OSError as exc:
                raise ActionError("start", spec.name, f"cannot execute: {exc}") from exc


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 (spec's own URL)
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _timeout_param(action: str, target: str, params: Params) -> float:
    raw = params.get("timeout", 10.0)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise UnsafeParameter(action, target, f"timeout must be a number, got {raw!r}")
    if not 0 < float(raw) <= _MAX_TIMEOUT:
        raise UnsafeParameter(action, target, f"timeout must be in (0, {_MAX_TIMEOUT:g}] s")
    return float(raw)
