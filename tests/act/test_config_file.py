"""The configuration-file executor, on real files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from selfheal_kg.act.config_file import ConfigFileExecutor
from selfheal_kg.act.executor import Executor
from selfheal_kg.errors import ActionError, UnsafeParameter


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    js = tmp_path / "checkout.json"
    js.write_text(json.dumps({"pool": {"size": 10}, "mode": "fast"}))
    ym = tmp_path / "cart.yaml"
    ym.write_text("timeout_ms: 500\nfeatures:\n  beta: false\n")
    env = tmp_path / "payments.env"
    env.write_text("# payments settings\nPOOL=5\nexport NAME='pay ments'\n")
    return {"checkout": js, "cart": ym, "payments": env}


def test_json_set_snapshot_and_restore(files: dict[str, Path]) -> None:
    ex = ConfigFileExecutor(files)
    params = {"pool.size": 20, "retries": 3}
    point = ex.snapshot("config_set", "checkout", params)
    assert point == {"had:pool.size": True, "old:pool.size": "10", "had:retries": False}
    assert ex.execute("config_set", "checkout", params).ok
    assert json.loads(files["checkout"].read_text()) == {
        "pool": {"size": 20}, "mode": "fast", "retries": 3}
    assert ex.restore("checkout", point).ok
    assert json.loads(files["checkout"].read_text()) == {"pool": {"size": 10}, "mode": "fast"}


def test_yaml_set_and_restore(files: dict[str, Path]) -> None:
    ex = ConfigFileExecutor(files)
    params = {"timeout_ms": 2000, "features.beta": True}
    point = ex.snapshot("config_set", "cart", params)
    ex.execute("config_set", "cart", params)
    assert yaml.safe_load(files["cart"].read_text()) == {
        "timeout_ms": 2000, "features": {"beta": True}}
    ex.restore("cart", point)
    assert yaml.safe_load(files["cart"].read_text()) == {
        "timeout_ms": 500, "features": {"beta": False}}


def test_env_set_keeps_comments_and_restore(files: dict[str, Path]) -> None:
    ex = ConfigFileExecutor(files)
    params = {"POOL": 8, "NAME": "a $HOME b", "NEW": "x"}
    point = ex.snapshot("config_set", "payments", params)
    assert point["old:NAME"] == json.dumps("pay ments")
    ex.execute("config_set", "payments", params)
    text = files["payments"].read_text()
    assert text == "# payments settings\nPOOL=8\nexport NAME='a $HOME b'\nNEW=x\n"
    ex.restore("payments", point)
    assert files["payments"].read_text() == "# payments settings\nPOOL=5\nexport NAME='pay ments'\n"


def test_versions_are_kept_and_rolled_back(files: dict[str, Path]) -> None:
    ex = ConfigFileExecutor(files, keep_versions=3)
    original = files["checkout"].read_text()
    for size in range(11, 16):
        ex.execute("config_set", "checkout", {"pool.size": size})
    assert ex.versions("checkout") == [3, 4, 5]
    point = ex.snapshot("config_rollback", "checkout", {})
    assert ex.execute("config_rollback", "checkout", {}).ok  # newest version: size 14
    assert json.loads(files["checkout"].read_text())["pool"]["size"] == 14
    ex.execute("config_rollback", "checkout", {"version": 4})
    assert json.loads(files["checkout"].read_text())["pool"]["size"] == 13
    with pytest.raises(ActionError, match="no version 1"):
        ex.execute("config_rollback", "checkout", {"version": 1})
    assert ex.restore("checkout", point).ok
    assert json.loads(files["checkout"].read_text())["pool"]["size"] == 15
    assert original != files["checkout"].read_text()


def test_rollback_without_versions(files: dict[str, Path]) -> None:
    with pytest.raises(ActionError, match="no saved version"):
        ConfigFileExecutor(files).execute("config_rollback", "cart", {})


def test_no_temp_files_are_left(files: dict[str, Path]) -> None:
    ex = ConfigFileExecutor(files)
    ex.execute("config_set", "checkout", {"mode": "safe"})
    names = sorted(p.name for p in files["checkout"].parent.iterdir())
    assert names == ["cart.yaml", "checkout.json", "checkout.json.v1", "payments.env"]


@pytest.mark.parametrize(
    ("target", "params", "reason"),
    [
        ("checkout", {"../etc/passwd": 1}, "not a safe key"),
        ("checkout", {"a b": 1}, "not a safe key"),
        ("payments", {"pool.size": 1}, "not a safe key"),
        ("payments", {"X": "a\nEVIL=1"}, "control character"),
        ("checkout", {"x": float("inf")}, "finite"),
        ("checkout", {}, "no key"),
        ("x; rm -rf /", {"a": 1}, "target must match"),
    ],
)
def test_unsafe_changes_are_refused(
    files: dict[str, Path], target: str, params: dict[str, object], reason: str
) -> None:
    before = files["checkout"].read_text()
    with pytest.raises(UnsafeParameter, match=reason):
        ConfigFileExecutor(files).execute("config_set", target, params)  # type: ignore[arg-type]
    assert files["checkout"].read_text() == before


def test_allowed_keys(files: dict[str, Path]) -> None:
    ex = ConfigFileExecutor(files, allowed_keys={"checkout": ["pool.size"]})
    assert ex.execute("config_set", "checkout", {"pool.size": 5}).ok
    with pytest.raises(UnsafeParameter, match="not allowed"):
        ex.execute("config_set", "checkout", {"mode": "x"})


def test_malformed_file_is_a_clear_error(files: dict[str, Path]) -> None:
    files["checkout"].write_text("{not json")
    with pytest.raises(ActionError, match=r"checkout.json does not parse"):
        ConfigFileExecutor(files).execute("config_set", "checkout", {"a": 1})
    files["cart"].write_text("- a list\n")
    with pytest.raises(ActionError, match="not a mapping"):
        ConfigFileExecutor(files).execute("config_set", "cart", {"a": 1})


def test_unknown_target_and_format(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="no configuration file"):
        ConfigFileExecutor(files).execute("config_set", "nobody", {"a": 1})
    with pytest.raises(ActionError, match=r"not a \.json"):
        ConfigFileExecutor({"x": tmp_path / "x.ini"})


def test_is_an_executor(files: dict[str, Path]) -> None:
    ex: Executor = ConfigFileExecutor(files)
    assert ex.actions == frozenset({"config_set", "config_rollback"})


def test_a_rollback_applies_only_when_a_saved_version_differs(files: dict[str, Path]) -> None:
    ex = ConfigFileExecutor(files)
    assert ex.applies("config_rollback", "checkout") == (
        "no saved version of checkout.json: nothing to roll back to")
    assert ex.applies("config_set", "checkout") is None
    assert ex.applies("config_set", "ghost") == "no configuration file registered for ghost"
    ex.execute("config_set", "checkout", {"mode": "safe"})
    assert ex.applies("config_rollback", "checkout") is None
    # a saved version with the file's own content: nothing to undo
    files["checkout"].write_bytes(files["checkout"].with_name("checkout.json.v1").read_bytes())
    reason = ex.applies("config_rollback", "checkout")
    assert reason is not None and "no change to undo" in reason
