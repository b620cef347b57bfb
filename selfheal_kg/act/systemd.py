"""Start, stop and restart systemd units through ``systemctl``, as an Executor.

The unit comes from an operator's map (target → unit) or, without one, is
``<target>.service`` for a target that passed the safe-name check. ``systemctl`` runs without
a shell, with ``--`` before the unit so nothing can be read as an option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from selfheal_kg.act.command import run_argv
from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import ParamSpec, check_target, validate
from selfheal_kg.errors import ActionError
from selfheal_kg.model import FactValue

_UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,250}")
_VERBS = {"systemd_restart": "restart", "systemd_start": "start", "systemd_stop": "stop"}
_SCHEMA = {"timeout": ParamSpec("float", default=30.0, minimum=1.0, maximum=300.0)}


class SystemdExecutor:
    """``systemd_restart``, ``systemd_start`` and ``systemd_stop`` on a target's unit.

    Args:
        units: target → unit name; when ``None`` every safe target maps to ``<target>.service``.
        systemctl: path or name (looked up on PATH) of the ``systemctl`` binary.
    """

    actions = frozenset(_VERBS)

    def __init__(
        self, units: Mapping[str, str] | None = None, systemctl: str = "systemctl"
    ) -> None:
        for unit in (units or {}).values():
            if not _UNIT.fullmatch(unit):
                raise ValueError(f"unit name {unit!r} is not a safe systemd unit name")
        self._units = dict(units) if units is not None else None
        self._systemctl = systemctl

    def unit(self, action: str, target: str) -> str:
        """Return the unit of ``target``; raise ``ActionError`` when it has none."""
        check_target(action, target)
        if self._units is None:
            return f"{target}.service"
        unit = self._units.get(target)
        if unit is None:
            raise ActionError(action, target, "no systemd unit registered for this target")
        return unit

    def is_active(self, action: str, target: str) -> str:
        """Return ``systemctl is-active`` of the target's unit (``active``, ``inactive`` ...)."""
        unit = self.unit(action, target)
        result = run_argv(action, target, [self._systemctl, "is-active", "--", unit], 30.0)
        state = result.stdout.strip().splitlines()
        return state[0] if state else "unknown"

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return ``{"unit": ..., "active": <is-active state>}``."""
        self._verb(action, target)
        validate(action, target, params, _SCHEMA)
        return {"unit": self.unit(action, target), "active": self.is_active(action, target)}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Run ``systemctl <verb> -- <unit>``; a non-zero exit is a failed report.

        Params: ``timeout`` (seconds, 1..300, default 30).
        """
        verb = self._verb(action, target)
        values = validate(action, target, params, _SCHEMA)
        unit = self.unit(action, target)
        timeout = float(values["timeout"])
        result = run_argv(action, target, [self._systemctl, verb, "--", unit], timeout)
        return ActionReport(result.returncode == 0, f"systemctl {verb} {unit}: {result.summary()}")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Start the unit if it was ``active`` in ``state``, stop it otherwise (when needed)."""
        was = state.get("active")
        if not isinstance(was, str):
            raise ActionError("restore", target, "state has no 'active'")
        now = self.is_active("restore", target)
        want_active = was == "active"
        if (now == "active") == want_active:
            return ActionReport(True, f"{self.unit('restore', target)} already {now}")
        return self.execute("systemd_start" if want_active else "systemd_stop", target, {})

    def _verb(self, action: str, target: str) -> str:
        verb = _VERBS.get(action)
        if verb is None:
            raise ActionError(action, target, f"unknown action; known: {sorted(self.actions)}")
        return verb

