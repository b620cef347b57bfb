"""``selfheal replay FILE...``: what would selfheal have done with this telemetry?"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from selfheal_kg.config import Config
from selfheal_kg.errors import SelfHealError


def add_parser(sub: Any) -> None:
    """Register ``replay``."""
    p = sub.add_parser(
        "replay", help="run recorded OTLP (JSON lines) through the pipeline, in dry-run"
    )
    p.add_argument("files", nargs="+", type=Path, help="recordings (selfheal serve --record)")
    p.add_argument(
        "--topology",
        type=Path,
        action="append",
        default=[],
        help="topology Turtle file (repeat for several)",
    )
    p.add_argument("--tick", type=float, default=1.0, help="pipeline tick, recorded seconds")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Replay and print the incidents that would have been handled."""
    from selfheal_kg.demo.show import Narrator
    from selfheal_kg.replay import replay

    console = Console()
    try:
        config = Config.from_env(topology_files=tuple(args.topology))
        result = replay(
            args.files, config, tick=args.tick, on_event=None if args.quiet else Narrator(console)
        )
    except SelfHealError as exc:
        console.print(f"selfheal replay: {exc}", markup=False)
        return 2
    table = Table(title=f"replay: {result.requests} requests, {result.ticks} ticks (dry run)")
    for col in ("incident", "status", "root cause", "playbook"):
        table.add_column(col)
    for inc in result.incidents:
        table.add_row(
            inc["id"], inc.get("status", ""), inc.get("root", "-"), inc.get("playbook", "-")
        )
    console.print(table)
    return 0
