"""The shop service's configuration file: checked values, re-read when it changes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from selfheal_kg.paths import shipped

# the shop's scripts are not a package: import them as service.py does
sys.path.insert(0, str(shipped("demo") / "shop"))
from settings import Settings, check


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([], "not an object"),
        ({"tax_rate": "twenty percent"}, "tax_rate"),
        ({"tax_rate": True}, "tax_rate"),
        ({"tax_rate": 3}, "tax_rate"),
        ({"currency": "euro"}, "currency"),
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": 2.5}, "pool_size"),
    ],
)
def test_unusable_values_are_named(doc: object, reason: str) -> None:
    problem = check(doc)
    assert problem is not None and reason in problem


def test_good_values_and_defaults_pass() -> None:
    assert check({}) is None
    assert check({"currency": "USD", "tax_rate": 0, "pool_size": 256}) is None


def _write(path: Path, doc: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)  # as ConfigFileExecutor writes: atomically, a new inode


def test_a_push_and_its_rollback_take_effect_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "checkout.json"
    _write(path, {"tax_rate": 0.2, "pool_size": 4})
    settings = Settings(path)
    assert settings.problem() is None and settings.get("pool_size") == 4
    _write(path, {"tax_rate": "twenty percent", "pool_size": 4})
    settings.refresh(force=True)
    assert "tax_rate" in (settings.problem() or "")
    assert settings.get("pool_size") == 4  # the last usable file stays in force
    _write(path, {"tax_rate": 0.2, "pool_size": 16})
    settings.refresh(force=True)
    assert settings.problem() is None and settings.get("pool_size") == 16


def test_missing_or_malformed_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    settings = Settings(path)
    assert "cannot read" in (settings.problem() or "")
    path.write_text("{not json")
    settings.refresh(force=True)
    assert "does not parse" in (settings.problem() or "")
    path.write_text("x" * 70_000)
    settings.refresh(force=True)
    assert "larger than" in (settings.problem() or "")
