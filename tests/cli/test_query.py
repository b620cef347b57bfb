"""``selfheal query``: formats, fresh store from shipped files, errors."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest

from selfheal_kg.cli import query
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.store import OxigraphStore
from selfheal_kg.paths import shipped

PLAYBOOKS = """PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>
SELECT ?id ?risk WHERE { ?p a shk:Playbook ; shk:playbookId ?id ; shk:riskLevel ?risk }
ORDER BY ?id"""


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    query.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["query", *argv])
    code: int = args.run(args)
    return code


def test_table_of_shipped_playbooks(
    capsys: pytest.CaptureFixture[str], shipped_playbook_ids: list[str]
) -> None:
    assert _run([PLAYBOOKS]) == 0
    out = capsys.readouterr().out
    assert any(line.split() == ["restart-service", "low"] for line in out.splitlines())
    assert f"({len(shipped_playbook_ids)} rows)" in out


def test_json_format(capsys: pytest.CaptureFixture[str], shipped_playbook_ids: list[str]) -> None:
    assert _run([PLAYBOOKS, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ids = [b["id"]["value"] for b in doc["results"]["bindings"]]
    assert ids == shipped_playbook_ids


def test_csv_format_with_topology(capsys: pytest.CaptureFixture[str]) -> None:
    topo = shipped("demo") / "topology.ttl"
    q = (
        "PREFIX shk: <https://w3id.org/selfheal-kg/ontology#>"
        " SELECT ?n WHERE { ?s shk:serviceName ?n } ORDER BY ?n"
    )
    assert _run([q, "--format", "csv", "--topology", str(topo)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["n"]
    assert ["checkout"] in rows


def test_existing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "store"
    store = OxigraphStore(path)
    KnowledgeLoader(store, shipped("ontology")).load_all([], shipped("playbooks"))
    del store  # release the RocksDB lock before the command opens it
    assert _run([PLAYBOOKS, "--store", str(path), "--format", "csv"]) == 0
    assert "scale-out,medium" in capsys.readouterr().out


def test_update_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["DROP ALL"]) == 1
    assert "read-only" in capsys.readouterr().err


def test_syntax_error_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["SELECT ?x WHERE { ?x"]) == 1
    assert capsys.readouterr().err.startswith("error:")
