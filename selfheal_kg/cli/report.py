"""``selfheal report``: the effectiveness report of detection and healing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selfheal_kg.errors import FileLoadError, QueryError
from selfheal_kg.kg.loader import KnowledgeLoader
from selfheal_kg.kg.store import KnowledgeStore, OxigraphStore
from selfheal_kg.learn.report import DAY, effectiveness
from selfheal_kg.paths import shipped

PERIODS = {"hour": 3600.0, "day": DAY, "week": 7 * DAY}
COLUMNS = (
    ("incidents", "incidents"),
    ("mttd", "MTTD s"),
    ("mttr", "MTTR s"),
    ("success_rate", "success"),
    ("false_positive_rate", "false pos."),
    ("recurrence_rate", "recurrence"),
    ("actions_per_incident", "actions/inc."),
)
SECTIONS = (
    ("by_pattern", "pattern"),
    ("by_playbook", "playbook"),
    ("by_service", "service"),
    ("by_period", "period"),
)


def add_parser(subparsers: Any) -> None:
    """Add the ``report`` subcommand to ``subparsers`` (an argparse sub-parsers action)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="effectiveness report: MTTD, MTTR, success, false positives, suggestions",
        description="Report how detection and healing performed, per pattern, playbook, "
        "service and period, with improvement suggestions. Without --store the shipped "
        "knowledge is loaded into an empty in-memory store (no incidents).",
    )
    p.add_argument("--store", type=Path, default=None, help="on-disk Oxigraph store directory")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--period", choices=sorted(PERIODS), default="day")
    p.add_argument(
        "--last",
        type=int,
        default=5,
        metavar="N",
        help="recent trials compared with earlier ones (falling success)",
    )
    p.set_defaults(run=run)


def _fresh_store() -> KnowledgeStore:
    store = OxigraphStore(None)
    KnowledgeLoader(store, shipped("ontology")).load_all([], shipped("playbooks"))
    return store


def run(args: argparse.Namespace) -> int:
    """Print the report; return 0, or 1 when the store cannot be read."""
    if args.last < 1:
        print("error: --last must be at least 1", file=sys.stderr)
        return 1
    try:
        store = OxigraphStore(args.store) if args.store else _fresh_store()
        rep = effectiveness(store, period=PERIODS[args.period], last_n=args.last)
    except (QueryError, FileLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a store directory locked by a running server
        print(f"error: cannot open store {args.store}: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(rep, indent=2, sort_keys=True))
    else:
        print_tables(rep, Console())
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return escape(str(value))  # names come from telemetry: never rich markup


def print_tables(rep: dict[str, Any], console: Console) -> None:
    """Print the report as rich tables."""
    overall = Table(title="Overall")
    for _, head in COLUMNS:
        overall.add_column(head, justify="right")
    overall.add_row(*(_cell(rep["overall"][k]) for k, _ in COLUMNS))
    console.print(overall)
    for section, key in SECTIONS:
        table = Table(title=f"By {key}")
        table.add_column(key, no_wrap=True)  # ids must stay greppable
        for _, head in COLUMNS:
            table.add_column(head, justify="right")
        for row in rep[section]:
            table.add_row(_cell(row[key]), *(_cell(row[k]) for k, _ in COLUMNS))
        console.print(table)
    sugg = Table(title="Suggestions")
    sugg.add_column("kind")
    sugg.add_column("subject", no_wrap=True)
    sugg.add_column("suggestion")
    for s in rep["suggestions"]:
        sugg.add_row(_cell(s["kind"]), _cell(s["subject"]), _cell(s["message"]))
    console.print(sugg)
