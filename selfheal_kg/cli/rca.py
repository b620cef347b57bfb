"""``selfheal rca``: rank root causes from a topology file and a metrics CSV."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from selfheal_kg.detect.batch import parse_time
from selfheal_kg.errors import FileLoadError
from selfheal_kg.rca.batch import load_metrics, load_topology, rank_incident, split_baseline
from selfheal_kg.rca.rank import MODES

EXIT_BAD_INPUT = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``rca`` subcommand to ``subparsers`` (from ``add_subparsers()``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "rca",
        help="rank root-cause candidates from a topology and metrics",
        description="Print {'root_causes': [...]} as JSON on stdout.",
    )
    p.add_argument(
        "--topology",
        type=Path,
        required=True,
        metavar="TOPO",
        help="caller,callee CSV or Turtle (.ttl) with shk:calls/shk:dependsOn",
    )
    p.add_argument(
        "--metrics",
        type=Path,
        required=True,
        metavar="METRICS.csv",
        help="long CSV timestamp,node,metric,value",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="BASE.csv",
        help="normal-operation metrics (default: data before --at / first half)",
    )
    p.add_argument("--target", default=None, help="node where the problem was noticed")
    p.add_argument(
        "--at", default=None, metavar="TIME", help="incident start (epoch seconds or ISO 8601)"
    )
    p.add_argument("--top", type=int, default=5, metavar="K")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="walk",
        help="walk: the server's ranking (default); traversal: keep anomalous nodes no "
        "anomalous dependency explains first (docs/rca.md)",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=None,
        metavar="NAME",
        help="only these metrics (a name or a family such as latency) count; repeatable",
    )
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``selfheal rca``; return the exit status (2 on bad input)."""
    try:
        result = analyse(args)
    except FileLoadError as exc:
        print(f"selfheal rca: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        print(f"selfheal rca: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def analyse(args: argparse.Namespace) -> dict[str, Any]:
    """Load the files, score nodes against the baseline and rank them."""
    if args.top < 1:
        raise ValueError("--top must be at least 1")
    at = parse_time(args.at) if args.at is not None else None
    snapshot = load_topology(args.topology)
    rows = load_metrics(args.metrics)
    if args.baseline is not None:
        base = load_metrics(args.baseline)
        incident = [r for r in rows if at is None or r[0] >= at]
    else:
        base, incident = split_baseline(rows, at)
    # the same path as the server's ranking, with proxy nodes folded onto the service they
    # front and deviations already present before the incident discounted
    causes = rank_incident(
        snapshot,
        base,
        incident,
        target=args.target,
        metrics=args.metric,
        top=args.top,
        mode=args.mode,
    )
    return {
        "root_causes": [
            {
                "rank": c.rank,
                "node": c.node,
                "score": c.score,
                "evidence": list(c.evidence),
                "path": list(c.path),
                "explanation": c.explanation,
                "components": dict(c.components),
            }
            for c in causes
        ]
    }
