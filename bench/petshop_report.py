"""Root cause accuracy on the PetShop training split (CC-BY-4.0, Hardt et al. 2023).

Usage: ``python bench/petshop_report.py [DATASET_DIR]``. Converts each issue (adjacency
matrix ``graph.csv``, wide ``metrics.csv`` with four header rows) into our inputs, ranks with
:func:`selfheal_kg.rca.rank.rank` and prints top-1/top-3 per target metric kind beside a
random ranking (expected value) and a max-|z| ranking. Baseline: the scenario's ``noissue``
metrics, or, where absent, the issue's rows before the target time.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from selfheal_kg.rca.batch import Rows, deviations, node_anomalies  # noqa: E402
from selfheal_kg.rca.graph import TopologySnapshot  # noqa: E402
from selfheal_kg.rca.rank import rank  # noqa: E402

DEFAULT_DIR = REPO.parent / "shared" / "datasets" / "petshop-train"


def read_graph(path: Path) -> TopologySnapshot:
    """Read the adjacency matrix (row calls column)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    edges = [(r[0], names[j]) for r in rows[1:] for j, v in enumerate(r[1:]) if v and float(v)]
    return TopologySnapshot.from_edges(edges, nodes=names)


def read_metrics(path: Path) -> Rows:
    """Read the wide four-header-row metrics into long rows (metric = ``kind.statistic``)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    nodes, metrics, stats = rows[0], rows[1], rows[2]
    out: Rows = []
    for r in rows[4:]:
        t = float(r[0])
        out += [(t, nodes[j], f"{metrics[j]}.{stats[j]}", float(v))
                for j, v in enumerate(r) if j and v.strip()]
    return out


def evaluate(issue: Path, snap: TopologySnapshot, noissue: Rows | None) -> dict[str, object]:
    """Rank one issue; return the truth, our top 3 and the max-|z| top 3."""
    target = json.loads((issue / "target.json").read_text())
    rows = read_metrics(issue / "metrics.csv")
    at = float(target["target"]["timestamp"])
    base = noissue if noissue is not None else [r for r in rows if r[0] < at]
    devs = deviations(base, rows if noissue is not None else [r for r in rows if r[0] >= at])
    anomalies = node_anomalies(devs)
    observed = {r[1] for r in rows}
    ours = [c.node for c in rank(snap, anomalies, target=target["target"]["node"], top=3,
                                 observed=observed)]
    worst: dict[str, float] = defaultdict(float)
    for d in devs:
        worst[d.node] = max(worst[d.node], abs(d.z))
    maxz = sorted(worst, key=lambda n: -worst[n])[:3]
    return {"kind": target["target"]["metric"], "truth": target["root_cause"]["node"],
            "ours": ours, "maxz": maxz, "n": snap.graph.number_of_nodes()}


def main(argv: list[str] | None = None) -> int:
    """Print the report; return 0."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DIR)
    args = ap.parse_args(argv)
    results = []
    for scenario in sorted(p for p in args.dataset.iterdir() if p.is_dir()):
        snap = read_graph(scenario / "graph.csv")
        base_file = scenario / "noissue" / "metrics.csv"
        noissue = read_metrics(base_file) if base_file.exists() else None
        for issue in sorted((scenario / "train").iterdir()):
            r = evaluate(issue, snap, noissue)
            print(f"{scenario.name}/{issue.name} {r['kind']:12} truth={r['truth']} "
                  f"ours={r['ours']} maxz={r['maxz']}")
            results.append(r)
    print()
    print(f"{'kind':12} {'n':>3} | {'ours@1':>6} {'ours@3':>6} | {'maxz@1':>6} {'maxz@3':>6} |"
          f" {'rand@1':>6} {'rand@3':>6}")
    for kind in [*sorted({str(r["kind"]) for r in results}), "all"]:
        rs = [r for r in results if kind in ("all", r["kind"])]
        print(f"{kind:12} {len(rs):3d} | {_hit(rs, 'ours', 1):6.2f} {_hit(rs, 'ours', 3):6.2f} |"
              f" {_hit(rs, 'maxz', 1):6.2f} {_hit(rs, 'maxz', 3):6.2f} |"
              f" {_rand(rs, 1):6.2f} {_rand(rs, 3):6.2f}")
    return 0


def _hit(rs: list[dict[str, object]], key: str, k: int) -> float:
    return sum(r["truth"] in list(r[key])[:k] for r in rs) / len(rs)  # type: ignore[call-overload]


def _rand(rs: list[dict[str, object]], k: int) -> float:
    """Expected top-k of a uniform random ranking of all graph nodes."""
    return sum(min(1.0, k / int(r["n"])) for r in rs) / len(rs)  # type: ignore[call-overload]


if __name__ == "__main__":
    raise SystemExit(main())
