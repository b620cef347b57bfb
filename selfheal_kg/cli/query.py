"""``selfheal query 'SPARQL'``: run a read-only query over the knowledge graph."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from selfheal_kg.errors import FileLoadError, QueryError
from selfheal_kg.kg import sparql
from selfheal_kg.kg.loader import KnowledgeLoader, rules_dir_triples
from selfheal_kg.kg.store import KnowledgeStore, OxigraphStore
from selfheal_kg.paths import shipped

FORMATS = {"table": sparql.to_table, "json": sparql.to_json_text, "csv": sparql.to_csv}


def add_parser(subparsers: Any) -> None:
    """Add the ``query`` subcommand to ``subparsers`` (an argparse sub-parsers action)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "query",
        help="run a read-only SPARQL query",
        description="Run a SPARQL 1.1 query (SELECT, ASK, CONSTRUCT, DESCRIBE). Without --store, "
        "the shipped ontology, patterns, playbooks and rules (and --topology files) are loaded "
        "into a fresh in-memory store.",
    )
    p.add_argument("sparql", help="the query text; '-' reads it from standard input")
    p.add_argument("--format", choices=sorted(FORMATS), default="table")
    p.add_argument("--store", type=Path, default=None, help="on-disk Oxigraph store directory")
    p.add_argument(
        "--topology",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="topology Turtle file to load first (repeat for several)",
    )
    p.set_defaults(run=run)


def _fresh_store(topology: list[Path]) -> KnowledgeStore:
    store = OxigraphStore(None)
    loader = KnowledgeLoader(store, shipped("ontology"))
    loader.load_all(topology, shipped("playbooks"), rules_dir_triples(shipped("rules")))
    return store


def run(args: argparse.Namespace) -> int:
    """Run the query and print the result; return 0, or 1 on a bad query or file."""
    text = sys.stdin.read() if args.sparql == "-" else str(args.sparql)
    try:
        sparql.check_read_only(text)
        store = OxigraphStore(args.store) if args.store else _fresh_store(list(args.topology))
        result = store.query(text)
        out = FORMATS[args.format](result)
    except (QueryError, FileLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a store directory locked by a running server
        print(f"error: cannot open store {args.store}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0
