"""Time to detect, to diagnose and to verified recovery, per demo fault, over N live runs.

Usage: ``python bench/bench_faults.py [--faults bad-config,crash,...] (default: every fault)
[--runs 3] [--warmup 12]``. Each run starts the demo from scratch (selfheal on a real uvicorn,
the shop as real processes under Poisson load), injects one fault and waits for its outcome,
so the runs do not share baselines, throttles or learning. Times are seconds after the injection;
"as expected" counts runs with the expected root cause and outcome (an escalation for
faults no playbook may repair). The baseline beside them, measured in the same runs: the
first telemetry export received after the injection, the earliest moment any detector
could know (exports come every second); detection minus it is what selfheal adds. Real
processes, real time: a run takes warmup + ~30 s (``leak``: ~60 s, the trend needs ~30 s
of growth).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from selfheal_kg.demo.show import DEFAULT_FAULTS, SCENARIOS, FaultRun, run_show  # noqa: E402


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def _times(runs: list[FaultRun], attr: str) -> list[float]:
    out = []
    for r in runs:
        t = getattr(r, attr)
        if isinstance(t, float):
            out.append(t - r.injected_at)
    return out


def bench(fault: str, n: int, warmup: float) -> list[FaultRun]:
    """Run the demo ``n`` times with ``fault`` alone; return the runs."""
    quiet = Console(file=io.StringIO())
    return [run_show([fault], console=quiet, warmup=warmup)[0] for _ in range(n)]


def main(argv: list[str]) -> int:
    """Run the benchmark and print one row per fault."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", default=",".join(DEFAULT_FAULTS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=12.0)
    args = parser.parse_args(argv)
    names = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or not 1 <= args.runs <= 50:
        parser.error(f"unknown faults {unknown}" if unknown else "--runs must be in 1..50")
    table = Table(title=f"demo faults, {args.runs} run(s) each (median / max, seconds)")
    for col in ("fault", "as expected", "first export (floor)", "detect", "diagnose",
                "verified recovery"):
        table.add_column(col)
    for name in names:
        runs = bench(name, args.runs, args.warmup)
        good = sum(r.as_expected for r in runs)
        table.add_row(
            name,
            f"{good}/{len(runs)}",
            _spread(_times(runs, "first_export_at")),
            _spread(_times(runs, "detected_at")),
            _spread(_times(runs, "diagnosed_at")),
            _spread(_times([r for r in runs if r.outcome and r.outcome.success], "healed_at")),
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
