"""``selfheal test-rules``: pass/fail per case, exit 1 on a failure, 2 on a refused file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from selfheal_kg.cli import test_rules
from selfheal_kg.paths import shipped


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    test_rules.add_parser(parser.add_subparsers())
    args = parser.parse_args(["test-rules", *argv])
    code: int = args.run(args)
    return code


def test_shipped_fixtures_pass_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run() == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out and ", 0 failed" in out


def test_a_failing_case_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = shipped("rules")
    (tmp_path / "f.yaml").write_text(
        f"rule_files: ['{rules / 'errors.yaml'}']\n"
        "cases:\n  - name: wrong expectation\n"
        "    steps: [{at: 1, assert: {id: s1, type: signal, node: a,"
        " metric: http.server.error.ratio, direction: up}}]\n"
        "    expect: []\n",
        encoding="utf-8",
    )
    assert _run(str(tmp_path), "--engine", "reference") == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "wrong expectation" in out and "HighErrorRate" in out


def test_a_malformed_fixture_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.yaml").write_text("cases: 3\n", encoding="utf-8")
    assert _run(str(tmp_path)) == 2
    assert "f.yaml" in capsys.readouterr().err
