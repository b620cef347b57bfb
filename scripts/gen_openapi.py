"""Write ``docs/openapi.json`` from the real FastAPI app.

Usage: ``.venv/bin/python scripts/gen_openapi.py`` (write) or ``... --check`` (exit 1 when the
file differs from what the app describes now). The description comes from
``create_app(Runtime(Config())).openapi()``, serialised with sorted keys and an indent of 2,
so the file only changes when the API does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "openapi.json"


def render() -> str:
    """Return the OpenAPI document of the app, as the text ``docs/openapi.json`` holds."""
    if str(ROOT) not in sys.path:  # run as a script, the repository root is not on the path
        sys.path.insert(0, str(ROOT))
    from api.main import create_app
    from selfheal_kg.config import Config
    from selfheal_kg.runtime import Runtime

    runtime = Runtime(Config())  # defaults only: SELFHEAL_* variables must not change the file
    try:
        spec = create_app(runtime).openapi()
    finally:
        runtime.pipeline.close()
        runtime.engine.close()
    return json.dumps(spec, sort_keys=True, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) ``docs/openapi.json``; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: docs/openapi.json")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python scripts/gen_openapi.py")
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
