"""Where the shipped files (ontology, rules, playbooks, demo) live.

In a source checkout they sit at the repository root; in an installed wheel they are copied
under ``selfheal_kg/_shipped``.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """Return a shipped directory: ``ontology``, ``rules``, ``playbooks`` or ``demo``."""
    for candidate in (_PKG.parent / name, _PKG / "_shipped" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shipped directory {name!r} not found")
