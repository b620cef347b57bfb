"""Fact builders and file helpers for the rule engine tests."""

from __future__ import annotations

from pathlib import Path

from selfheal_kg.model import Fact

HERE = Path(__file__).parent


def health(fid: str, node: str, status: str = "down", at: float = 0.0) -> Fact:
    return Fact(fid, "health", {"node": node, "status": status, "source": "probe"}, at)


def signal(
    fid: str, node: str, metric: str, direction: str = "up", score: float = 0.9, at: float = 0.0
) -> Fact:
    attrs = {"node": node, "metric": metric, "detector": "ewma", "direction": direction,
             "score": score, "onset": at}
    return Fact(fid, "signal", attrs, at)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
