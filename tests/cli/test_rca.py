from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from selfheal_kg.cli import rca

TOPO = "caller,callee\nweb,orders\nweb,users\norders,db\nusers,db\nweb,static\n"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="selfheal")
    rca.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def metrics_csv(path: Path) -> Path:
    lines = ["timestamp,node,metric,value"]
    for t in range(20):
        slow = t >= 10
        wobble = 0.01 * (t % 3)
        lines += [
            f"{t * 60},web,latency,{(0.9 if slow else 0.2) + wobble}",
            f"{t * 60},orders,latency,{(0.7 if slow else 0.1) + wobble}",
            f"{t * 60},users,latency,{(0.6 if slow else 0.1) + wobble}",
            f"{t * 60},static,latency,{0.05 + wobble}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rca_end_to_end_finds_the_uninstrumented_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topo = tmp_path / "topo.csv"
    topo.write_text(TOPO)
    args = parse(["rca", "--topology", str(topo), "--metrics", str(metrics_csv(tmp_path / "m.csv")),
                  "--target", "web", "--top", "3"])
    assert rca.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    first = out["root_causes"][0]
    assert first["rank"] == 1 and first["node"] == "db"
    assert first["path"][0] == "web" and first["path"][-1] == "db"
    assert "orders/latency" in first["evidence"]
    assert len(out["root_causes"]) <= 3
    assert "static" not in [c["node"] for c in out["root_causes"]]


def test_rca_reads_turtle_topology_and_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ttl = tmp_path / "topo.ttl"
    ttl.write_text("""
@prefix shk: <https://w3id.org/selfheal-kg/ontology#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix id: <https://w3id.org/selfheal-kg/id/> .
<https://w3id.org/selfheal-kg/id/service/web> a shk:Service ; shk:serviceName "web" ;
    shk:calls <https://w3id.org/selfheal-kg/id/service/orders> .
<https://w3id.org/selfheal-kg/id/service/orders> a shk:Service ; shk:serviceName "orders" ;
    shk:dependsOn <https://w3id.org/selfheal-kg/id/database/db> .
<https://w3id.org/selfheal-kg/id/database/db> a shk:Database ; rdfs:label "db" .
""")
    m = metrics_csv(tmp_path / "m.csv")
    args = parse(["rca", "--topology", str(ttl), "--metrics", str(m), "--at", "600"])
    assert rca.run(args) == 0
    nodes = [c["node"] for c in json.loads(capsys.readouterr().out)["root_causes"]]
    assert nodes[0] == "db"


def test_separate_baseline_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = tmp_path / "topo.csv"
    topo.write_text("caller,callee\na,b\n")
    base = tmp_path / "base.csv"
    base.write_text("timestamp,node,metric,value\n" + "".join(
        f"{t},{n},latency,{1 + 0.01 * (t % 3)}\n" for t in range(10) for n in "ab"))
    m = tmp_path / "m.csv"
    m.write_text("timestamp,node,metric,value\n100,a,latency,5\n100,b,latency,9\n")
    args = parse(["rca", "--topology", str(topo), "--metrics", str(m), "--baseline", str(base)])
    assert rca.run(args) == 0
    assert json.loads(capsys.readouterr().out)["root_causes"][0]["node"] == "b"


@pytest.mark.parametrize(
    ("topo", "metrics", "needle"),
    [
        ("caller,callee\na\n", "timestamp,node,metric,value\n1,a,l,1\n", "topo.csv:2"),
        ("src,dst\na,b\n", "timestamp,node,metric,value\n1,a,l,1\n", "topo.csv:1"),
        ("caller,callee\na,b\n", "timestamp,node,metric,value\n1,a,l,x\n", "m.csv:2"),
        ("caller,callee\na,b\n", "timestamp,node,metric,value\n1,a,l,inf\n", "m.csv:2"),
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], topo: str, metrics: str, needle: str
) -> None:
    (tmp_path / "topo.csv").write_text(topo)
    (tmp_path / "m.csv").write_text(metrics)
    args = parse(["rca", "--topology", str(tmp_path / "topo.csv"),
                  "--metrics", str(tmp_path / "m.csv")])
    assert rca.run(args) == 2
    assert needle in capsys.readouterr().err


def test_bad_turtle_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.ttl").write_text("this is not turtle <")
    (tmp_path / "m.csv").write_text("timestamp,node,metric,value\n")
    args = parse(["rca", "--topology", str(tmp_path / "t.ttl"), "--metrics",
                  str(tmp_path / "m.csv")])
    assert rca.run(args) == 2
    assert "t.ttl" in capsys.readouterr().err
