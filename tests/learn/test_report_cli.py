"""``selfheal report`` on an on-disk store written by IncidentBook (cli/report.py)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from selfheal_kg.cli import report
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.store import OxigraphStore
from selfheal_kg.paths import shipped


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="selfheal")
    report.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "learn_histories_cli", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["learn_histories_cli"] = mod
    spec.loader.exec_module(mod)
    path = tmp_path / "store"
    store = OxigraphStore(path)
    KnowledgeLoader(store, shipped("ontology")).load_all([], shipped("playbooks"))
    h = mod.history_on(store)
    h.run()
    h.run(success=False)
    h.run(pattern="Weird[red]Pattern", playbook=None)
    del store  # release the RocksDB lock for the command
    return path


def test_json_report(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.run(parse(["report", "--store", str(store_dir), "--format", "json"])) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["overall"]["incidents"] == 3
    assert rep["overall"]["success_rate"] == 0.5
    assert {s["subject"] for s in rep["suggestions"]} == {"Weird[red]Pattern"}


def test_table_report_prints_names_verbatim(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report.run(parse(["report", "--store", str(store_dir), "--period", "week"])) == 0
    out = capsys.readouterr().out
    assert "Overall" in out and "By playbook" in out and "restart-service" in out
    assert "Weird[red]Pattern" in out  # not eaten as rich markup


def test_without_store_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert report.run(parse(["report", "--format", "json"])) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["incidents"] == 0
    assert report.run(parse(["report", "--last", "0"])) == 1
    assert "--last" in capsys.readouterr().err
