"""``selfheal test-rules [DIR]``: run rule fixture files, print pass/fail per case."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.fixtures import run_fixture_dir
from selfheal_kg.engine.port import RuleEngine
from selfheal_kg.engine.reference import ReferenceEngine
from selfheal_kg.errors import FileLoadError
from selfheal_kg.paths import shipped

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
ENGINES: dict[str, Callable[[], RuleEngine]] = {
    "durable": DurableRuleEngine,
    "reference": ReferenceEngine,
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``test-rules`` subcommand to ``subparsers``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "test-rules",
        help="run rule fixture files (facts in, expected firings out)",
        description="Run every *.yaml fixture of DIR; exit 1 if any case fails.",
    )
    p.add_argument("dir", nargs="?", type=Path, default=None, metavar="DIR")
    p.add_argument("--engine", default="durable", choices=sorted(ENGINES))
    p.set_defaults(run=run, func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the fixtures; return 0 if all pass, 1 if one fails, 2 on a refused file."""
    directory = args.dir if args.dir is not None else shipped("rules") / "tests"
    try:
        results = run_fixture_dir(directory, ENGINES[args.engine])
    except FileLoadError as exc:
        print(f"selfheal test-rules: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'}  {result.file}: {result.name}")
        if not result.passed:
            print(f"      expected: {list(result.expected)}")
            print(f"      got:      {list(result.got)}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return EXIT_FAILED if failed else 0
