"""``selfheal demo``: the shop breaks and heals itself, explained step by step."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from selfheal_kg.demo.load import LOAD_PATTERNS
from selfheal_kg.demo.show import DEFAULT_FAULTS


def add_parser(sub: Any) -> None:
    """Register ``demo``."""
    p = sub.add_parser("demo", help="run the demo shop, inject faults, watch them heal")
    p.add_argument(
        "--faults",
        default=",".join(DEFAULT_FAULTS),
        help=f"comma-separated faults (default: {','.join(DEFAULT_FAULTS)})",
    )
    p.add_argument("--warmup", type=float, default=15.0, help="baseline seconds before faults")
    p.add_argument("--workdir", type=Path, help="where logs and the database go")
    p.add_argument("--duration", type=float, default=90.0,
                   help="seconds each fault is given to heal before the show moves on")
    p.add_argument("--load", choices=LOAD_PATTERNS, default="steady",
                   help="the users' load: steady 20 req/s, or diurnal (a sine around it, "
                   "one compressed day per 10 minutes)")
    p.add_argument("--db-dsn", help="PostgreSQL conninfo for the inventory's database "
                   "(its stock table is recreated); default: an SQLite file in the workdir")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the show; exit 0 when every fault healed with the right root cause."""
    from selfheal_kg.demo.show import run_show

    names = [f.strip() for f in args.faults.split(",") if f.strip()]
    try:
        if not 5.0 <= args.duration <= 3600.0:
            raise ValueError("--duration must be in [5, 3600] seconds")
        runs = run_show(names, workdir=args.workdir, warmup=args.warmup,
                        fault_timeout=args.duration, db_dsn=args.db_dsn,
                        load_pattern=args.load)
    except ValueError as exc:
        print(f"selfheal demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("selfheal demo: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    return 0 if all(r.as_expected for r in runs) else 1
