"""Entry point of the ``selfheal`` command: an explicit registry of subcommands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# name → module exposing add_parser(subparsers) and run(args) -> int
COMMANDS: dict[str, str] = {
    "serve": "selfheal_kg.cli.serve",
    "validate": "selfheal_kg.cli.validate",
    "query": "selfheal_kg.cli.query",
    "detect": "selfheal_kg.cli.detect",
    "rca": "selfheal_kg.cli.rca",
    "test-rules": "selfheal_kg.cli.test_rules",
    "report": "selfheal_kg.cli.report",
    "demo": "selfheal_kg.cli.demo",
    "replay": "selfheal_kg.cli.replay",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="selfheal",
        description="selfheal-kg: a self-healing expert system for OpenTelemetry services.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(module)
        mod.add_parser(sub)
        assert name in sub.choices, f"{module} did not add {name}"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except BrokenPipeError:
        # the reader went away (``selfheal report | head``): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
