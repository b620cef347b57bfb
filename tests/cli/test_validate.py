"""``selfheal validate``: exit codes and one message per problem."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from selfheal_kg.cli import validate


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    validate.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["validate", *argv])
    code: int = args.run(args)
    return code


def test_shipped_files_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_broken_turtle_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "topo.ttl"
    bad.write_text(
        "@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .\n\nshk:a shk:b shk:c ;\n.\n.\n",
        encoding="utf-8",
    )
    assert _run([str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{bad}:")
    line = int(out[0][len(str(bad)) + 1 :].split(":")[0])
    assert line >= 3


def test_playbook_missing_field_names_file_id_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pb = tmp_path / "pb.yaml"
    pb.write_text(
        "id: half-done\nname: Half\nhandles: [ServiceDown]\ntarget_types: [Service]\n"
        "risk: low\ncost: 1\nrequires_approval: false\nsteps: [{action: restart}]\n",
        encoding="utf-8",
    )
    assert _run([str(pb)]) == 1
    [line] = capsys.readouterr().out.strip().splitlines()
    assert str(pb) in line
    assert "[half-done]" in line
    assert "'success' is a required property" in line


def test_shape_violation_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = tmp_path / "topo.ttl"
    topo.write_text(
        "@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .\n"
        "<https://w3id.org/selfheal-kg/id/service/a> a shk:Service ;\n"
        '    shk:serviceName "a" ; shk:origin "guessed" .\n',
        encoding="utf-8",
    )
    assert _run([str(topo)]) == 1
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(str(topo))
    assert "id:service/a shk:origin (value guessed)" in line
    assert '"declared" or "discovered"' in line


def test_one_message_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.ttl").write_text("this is not turtle\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("id: b\n", encoding="utf-8")
    assert _run([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert any("a.ttl" in m for m in lines)
    assert any("b.yaml" in m for m in lines)


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([str(tmp_path / "nope.ttl")]) == 1
    assert "no such file" in capsys.readouterr().err
