from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

from selfheal_kg.cli import detect


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="selfheal")
    detect.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_detect_writes_one_scored_row_per_input_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    vals = rng.normal(10, 1, 120)
    vals[100:] += 10
    src = tmp_path / "in.csv"
    lines = ["timestamp,latency,ignored"] + [f"{300 * i},{v},x" for i, v in enumerate(vals)]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    args = parse(["detect", str(src), "-o", str(out)])
    assert args.run(args) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 120 and list(rows[0]) == ["timestamp", "value", "score", "anomaly"]
    flags = [int(r["anomaly"]) for r in rows]
    assert sum(flags[:100]) == 0 and flags[101] == 1
    assert all(0 <= float(r["score"]) <= 1 for r in rows)


def test_detect_to_stdout_with_ewma(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.csv"
    src.write_text("time,v\n2024-01-01T00:00:00Z,1\n2024-01-01T00:05:00Z,\n")
    assert detect.run(parse(["detect", str(src), "--detector", "ewma"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "1704067200.0,1.0,0,0" and out[2] == "1704067500.0,,0,0"


def test_bad_csv_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("timestamp,v\n1,2\n2,$(rm -rf /)\n")
    out = tmp_path / "out.csv"
    assert detect.run(parse(["detect", str(src), "-o", str(out)])) == 2
    err = capsys.readouterr().err
    assert f"{src}:3" in err and not out.exists()


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert detect.run(parse(["detect", str(tmp_path / "nope.csv")])) == 2
    assert "nope.csv" in capsys.readouterr().err
