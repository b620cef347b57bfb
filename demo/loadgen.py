"""Send steady load to the demo shop's gateway until Ctrl-C or ``--duration`` elapses.

Usage::

    python demo/loadgen.py --url http://127.0.0.1:8080/ [--rate 20] [--duration 60]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

try:
    from selfheal_kg.demo.load import LoadGenerator
except ImportError:  # a source checkout without the package installed: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from selfheal_kg.demo.load import LoadGenerator


def main(argv: list[str]) -> int:
    """Run the load and print its counts."""
    parser = argparse.ArgumentParser(description="Steady load on the demo shop.")
    parser.add_argument("--url", required=True, help="the gateway's URL")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    args = parser.parse_args(argv)
    try:
        load = LoadGenerator(args.url, args.rate)
    except ValueError as exc:
        parser.error(str(exc))
    load.start()
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait(args.duration)
    stats = load.stop()
    print(f"sent={stats.sent} ok={stats.ok} failed={stats.failed} skipped={stats.skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
