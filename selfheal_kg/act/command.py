"""Run named, pre-declared commands as an Executor; never through a shell.

A command is an argv template registered by the operator, e.g.
``["/usr/local/bin/flush-cache", "--service", "{target}"]``. A placeholder is a whole argv
element (``"{name}"``), replaced by one validated parameter or the target: a value is never
spliced into a string, so whatever it contains stays one literal argument. ``run_argv`` is
the one place a child process is started for the command-line executors (systemd, kubectl).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.act.params import Schema, check_target, validate
from selfheal_kg.errors import ActionError, UnsafeParameter
from selfheal_kg.model import FactValue

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MAX_OUTPUT = 2000
_MAX_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A finished child process: exit code and its (truncated) stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> str:
        """Return one line: the exit code and the first part of the output."""
        out = (self.stdout.strip() or self.stderr.strip()).replace("\n", " | ")
        return f"exit {self.returncode}: {out}" if out else f"exit {self.returncode}"


def run_argv(action: str, target: str, argv: Sequence[str], timeout: float,
             env: Mapping[str, str] | None = None) -> CommandResult:
    """Run ``argv`` without a shell; return its result, output truncated.

    Raises:
        ActionError: the program cannot be executed or did not finish within ``timeout``.
    """
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            list(argv), shell=False, capture_output=True, timeout=timeout,
            stdin=subprocess.DEVNULL, env=full_env, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ActionError(action, target, f"{argv[0]} timed out after {timeout:g} s") from exc
    except OSError as exc:
        raise ActionError(action, target, f"cannot execute {argv[0]}: {exc}") from exc
    return CommandResult(proc.returncode, _truncate(proc.stdout), _truncate(proc.stderr))


def _truncate(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= _MAX_OUTPUT else text[:_MAX_OUTPUT] + "…[truncated]"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One named command.

    Attributes:
        argv: the template, program first; an element is a literal or exactly ``"{name}"``
            where ``name`` is ``target`` or a parameter declared in ``params``.
        params: the parameters the command accepts.
        timeout: seconds before the child is killed and the step fails.
        undo: an optional argv template run by ``restore``, with the same parameters.
        env: variables laid over the executor's environment.
    """

    argv: tuple[str, ...]
    params: Schema = field(default_factory=dict)
    timeout: float = 30.0
    undo: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("command argv is empty")
        if not 0 < self.timeout <= _MAX_TIMEOUT:
            raise ValueError(f"command timeout must be in (0, {_MAX_TIMEOUT:g}] s")
        for template in (self.argv, self.undo or ()):
            for element in template:
                _check_element(element, self.params)


def _check_element(element: str, params: Schema) -> None:
    match = _PLACEHOLDER.fullmatch(element)
    if match is None:
        if "{" in element or "}" in element:
            raise ValueError(f"argv element {element!r}: a placeholder must be a whole element")
        return
    name = match.group(1)
    if name != "target" and name not in params:
        raise ValueError(f"argv placeholder {{{name}}} is not a declared parameter")


def render(template: Sequence[str], target: str, values: Mapping[str, FactValue]) -> list[str]:
    """Replace each whole-element placeholder by its value; literals stay as they are."""
    out = []
    for element in template:
        match = _PLACEHOLDER.fullmatch(element)
        if match is None:
            out.append(element)
            continue
        name = match.group(1)
        value = target if name == "target" else values.get(name)
        if value is None:
            raise UnsafeParameter("render", target, f"no value for placeholder {{{name}}}")
        if isinstance(value, str) and value.startswith("-"):
            # A leading dash would turn a value into an option of the program.
            raise UnsafeParameter("render", target, f"{{{name}}} value must not start with '-'")
        out.append(_as_arg(value))
    return out


def _as_arg(value: FactValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class CommandExecutor:
    """An Executor whose actions are the names of the registered commands.

    Args:
        commands: action name → its command; names follow the playbook action pattern.
    """

    def __init__(self, commands: Mapping[str, CommandSpec]) -> None:
        for name in commands:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
                raise ValueError(f"command name {name!r} is not [a-z][a-z0-9_-]*")
        self._commands = dict(commands)
        self.actions = frozenset(self._commands)

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Return the command and its validated parameters, for ``undo`` on restore."""
        spec = self._spec(action, target)
        values = validate(action, target, params, spec.params)
        return {"command": action, **values}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Run the command ``action`` for ``target``; a non-zero exit is a failed report.

        Raises:
            UnsafeParameter: the target or a parameter is refused (nothing runs).
            ActionError: unknown command, program missing, or timeout.
        """
        spec = self._spec(action, target)
        values = validate(action, target, params, spec.params)
        return self._run(action, target, spec.argv, values, spec)

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Run the command's ``undo`` template with the parameters saved in ``state``."""
        name = state.get("command")
        if not isinstance(name, str):
            raise ActionError("restore", target, "state has no 'command'")
        spec = self._spec(name, target)
        if spec.undo is None:
            return ActionReport(True, f"{name} has no undo; nothing to restore")
        values = {k: v for k, v in state.items() if k != "command"}
        checked = validate(name, target, values, spec.params)
        return self._run(f"restore:{name}", target, spec.undo, checked, spec)

    def _spec(self, action: str, target: str) -> CommandSpec:
        check_target(action, target)
        spec = self._commands.get(action)
        if spec is None:
            raise ActionError(action, target, f"unknown command; known: {sorted(self.actions)}")
        return spec

    def _run(self, action: str, target: str, template: Sequence[str],
             values: Mapping[str, FactValue], spec: CommandSpec) -> ActionReport:
        argv = render(template, target, values)
        result = run_argv(action, target, argv, spec.timeout, spec.env)
        return ActionReport(result.returncode == 0, f"{action} {target}: {result.summary()}")
