"""``selfheal detect``: score a CSV series with the server's detector and hysteresis."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from selfheal_kg.detect.batch import detect_file
from selfheal_kg.detect.registry import DEFAULT_DETECTOR, DETECTORS
from selfheal_kg.errors import ConfigError, FileLoadError

EXIT_BAD_INPUT = 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``detect`` subcommand to ``subparsers`` (from ``add_subparsers()``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "detect",
        help="score a CSV time series (timestamp,value) for anomalies",
        description="Write timestamp,value,score,anomaly for each input row (streaming).",
    )
    p.add_argument("input", type=Path, metavar="INPUT.csv")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTORS))
    p.add_argument("-o", "--output", type=Path, default=None, metavar="OUT.csv")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``selfheal detect``; return the exit status (2 on bad input)."""
    try:
        if args.output is None:
            detect_file(args.input, sys.stdout, args.detector)
            return 0
        _write(args.input, args.output, args.detector)
    except (FileLoadError, ConfigError) as exc:
        print(f"selfheal detect: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"selfheal detect: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _write(src: Path, dst: Path, detector: str) -> None:
    """Write through a temporary file so a failed run leaves no half-written output."""
    tmp = dst.with_name(dst.name + ".partial")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as out:
            detect_file(src, out, detector)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
