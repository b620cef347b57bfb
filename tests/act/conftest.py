"""Fakes shared by the repair-flow tests (plan ordering, journaled recovery)."""

from __future__ import annotations

import pytest


class FakeLive:
    """A LiveView whose nodes are seen when a test says so; no signals, no other incidents."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def seen_since(self, node: str, t: float) -> bool:
        return self.seen.get(node, float("-inf")) > t

    def signal_active(self, node: str, metric: str) -> bool:
        return False

    def active_ids(self) -> set[str]:
        return set()

    def opened_since(self, nodes: object, t: float, metrics: object = None,
                     until: float | None = None) -> list[str]:
        return []


@pytest.fixture
def fake_live() -> type[FakeLive]:
    """Return the fake LiveView class (tests build one per simulated process)."""
    return FakeLive
