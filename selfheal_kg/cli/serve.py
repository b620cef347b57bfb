"""``selfheal serve``: OTLP/HTTP intake and the API on one port (default 127.0.0.1:4318)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from selfheal_kg.config import Config
from selfheal_kg.errors import SelfHealError


def add_parser(sub: Any) -> None:
    """Register ``serve``."""
    p = sub.add_parser("serve", help="serve OTLP/HTTP and the API, and heal")
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 4318, the OTLP/HTTP port)")
    p.add_argument("--store", type=Path, dest="store_path", help="on-disk Oxigraph store dir")
    p.add_argument(
        "--topology",
        type=Path,
        action="append",
        default=None,
        help="topology Turtle file or directory (repeat for several)",
    )
    p.add_argument("--rules", type=Path, dest="rules_dir", help="rules directory")
    p.add_argument("--playbooks", type=Path, dest="playbooks_dir", help="playbooks directory")
    p.add_argument("--processes", type=Path, dest="processes_file", help="supervised processes")
    p.add_argument(
        "--executors", type=Path, dest="executors_file", help="what selfheal may act on, and how"
    )
    p.add_argument("--dry-run", action="store_true", default=None, help="execute nothing")
    p.add_argument("--token", dest="api_token", help="bearer token for mutating endpoints")
    p.add_argument("--record", type=Path, dest="record_path", help="record OTLP as JSON lines")
    p.add_argument("--notify", dest="notify_url", help="webhook for notifications and pages")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn

    from api.main import create_app
    from selfheal_kg.runtime import Runtime, default_topology_files

    topo = default_topology_files(args.topology) if args.topology else None
    try:
        config = Config.from_env(
            host=args.host,
            port=args.port,
            store_path=args.store_path,
            topology_files=topo,
            rules_dir=args.rules_dir,
            playbooks_dir=args.playbooks_dir,
            processes_file=args.processes_file,
            executors_file=args.executors_file,
            dry_run=args.dry_run,
            api_token=args.api_token,
            record_path=args.record_path,
            notify_url=args.notify_url,
        )
        runtime = Runtime(config)
    except SelfHealError as exc:
        print(f"selfheal serve: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(create_app(runtime), host=config.host, port=config.port, log_level="warning")
    return 0
