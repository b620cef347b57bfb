"""``selfheal validate [PATH...]``: check topology, playbook and rule files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from selfheal_kg.errors import FileLoadError
from selfheal_kg.kg.loader import validate_paths
from selfheal_kg.paths import shipped


def add_parser(subparsers: Any) -> None:
    """Add the ``validate`` subcommand to ``subparsers`` (an argparse sub-parsers action)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check topology (.ttl), playbook and rule (.yaml) files",
        description="Check files against their JSON Schemas and the SHACL shapes. "
        "Without PATH: the shipped ontology, playbooks and rules. Exit 0 when all is well, "
        "1 with one message per problem otherwise.",
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or directories")
    p.add_argument(
        "--ontology", type=Path, default=None, help="ontology directory (default: shipped)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validate the given paths; print one line per problem; return 0 or 1."""
    ontology = args.ontology or shipped("ontology")
    paths: list[Path] = list(args.paths) or [ontology, shipped("playbooks"), shipped("rules")]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"{p}: no such file or directory", file=sys.stderr)
    try:
        messages = validate_paths([p for p in paths if p.exists()], ontology)
    except FileLoadError as exc:  # the ontology or shapes themselves are broken
        print(str(exc), file=sys.stderr)
        return 1
    notes = [m for m in messages if m.startswith("note:")]
    problems = [m for m in messages if not m.startswith("note:")]
    for m in notes:
        print(m, file=sys.stderr)
    for m in problems:
        print(m)
    if problems or missing:
        return 1
    print(f"ok: {', '.join(str(p) for p in paths)}")
    return 0
