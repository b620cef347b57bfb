"""Named commands run without a shell, with real child processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from selfheal_kg.act.command import CommandExecutor, CommandSpec, run_argv
from selfheal_kg.act.executor import Executor
from selfheal_kg.act.params import ParamSpec
from selfheal_kg.errors import ActionError, UnsafeParameter

# Prints each argument it received on its own line, framed, so a test sees exact argv.
ECHO = (sys.executable, "-c", "import sys; [print('<' + a + '>') for a in sys.argv[1:]]")
HOSTILE = [
    "x; touch {pwned}",
    "$(touch {pwned})",
    "`touch {pwned}`",
    "x\ntouch {pwned}",
    "x && touch {pwned}",
    "x | touch {pwned}",
]


def executor(**extra: CommandSpec) -> CommandExecutor:
    return CommandExecutor(
        {
            "flush-cache": CommandSpec(
                argv=(*ECHO, "--service", "{target}", "--key", "{key}"),
                params={"key": ParamSpec("str", default="all", max_length=200)},
                undo=(*ECHO, "--restore", "{target}"),
            ),
            "fail": CommandSpec(argv=(sys.executable, "-c", "import sys; sys.exit(4)")),
            **extra,
        }
    )


def test_runs_the_named_command_with_params_as_whole_elements() -> None:
    report = executor().execute("flush-cache", "checkout", {"key": "sessions"})
    assert report.ok
    assert "<--service> | <checkout> | <--key> | <sessions>" in report.detail


def test_non_zero_exit_is_a_failed_report() -> None:
    report = executor().execute("fail", "checkout", {})
    assert not report.ok
    assert "exit 4" in report.detail


def test_unknown_command_is_refused() -> None:
    with pytest.raises(ActionError, match="unknown command"):
        executor().execute("rm", "checkout", {})


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_target_is_refused_and_runs_nothing(template: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    with pytest.raises(UnsafeParameter):
        executor().execute("flush-cache", template.format(pwned=pwned), {})
    assert not pwned.exists()


@pytest.mark.parametrize("template", [t for t in HOSTILE if "\n" not in t])
def test_hostile_param_is_one_literal_argument(template: str, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    value = template.format(pwned=pwned)
    report = executor().execute("flush-cache", "checkout", {"key": value})
    assert report.ok
    assert f"<--key> | <{value}>" in report.detail
    time.sleep(0.1)  # a forked shell would have had time to create the file
    assert not pwned.exists()


def test_newline_in_param_is_refused(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    with pytest.raises(UnsafeParameter, match="control character"):
        executor().execute("flush-cache", "checkout", {"key": f"x\ntouch {pwned}"})
    assert not pwned.exists()


def test_option_injection_through_a_param_is_refused() -> None:
    with pytest.raises(UnsafeParameter, match="must not start with '-'"):
        executor().execute("flush-cache", "checkout", {"key": "--delete-everything"})


def test_placeholders_must_be_whole_declared_elements() -> None:
    with pytest.raises(ValueError, match="whole element"):
        CommandSpec(argv=("/bin/echo", "--service={target}"))
    with pytest.raises(ValueError, match="not a declared parameter"):
        CommandSpec(argv=("/bin/echo", "{secret}"))
    with pytest.raises(ValueError, match="empty"):
        CommandSpec(argv=())


def test_timeout_kills_the_command() -> None:
    slow = CommandSpec(argv=(sys.executable, "-c", "import time; time.sleep(30)"), timeout=0.3)
    with pytest.raises(ActionError, match="timed out"):
        executor(slow=slow).execute("slow", "checkout", {})


def test_output_is_truncated() -> None:
    loud = CommandSpec(argv=(sys.executable, "-c", "print('x' * 100000)"))
    report = executor(loud=loud).execute("loud", "checkout", {})
    assert report.ok
    assert "[truncated]" in report.detail
    assert len(report.detail) < 3000


def test_missing_program(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="cannot execute"):
        run_argv("x", "t", [str(tmp_path / "nope")], 5.0)


def test_snapshot_and_restore_run_undo() -> None:
    ex = executor()
    state = ex.snapshot("flush-cache", "checkout", {"key": "sessions"})
    assert state == {"command": "flush-cache", "key": "sessions"}
    report = ex.restore("checkout", state)
    assert report.ok
    assert "<--restore> | <checkout>" in report.detail
    assert ex.restore("checkout", {"command": "fail"}).detail.endswith("nothing to restore")
    with pytest.raises(UnsafeParameter):
        ex.restore("checkout", {"command": "flush-cache", "key": "x", "evil": "1"})


def test_is_an_executor() -> None:
    ex: Executor = executor()
    assert ex.actions == frozenset({"flush-cache", "fail"})
