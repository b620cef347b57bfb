"""End-to-end tests run real processes on a shared 2-core machine, in real time.

A fault's timing (which signal opens in which tick) varies with the load of the machine, and RCA
or verification can then take a different, wrong branch: such a test is rerun once before it
counts as failed (pytest-rerunfailures), and the rerun is reported in the summary (``R``), never
hidden. A test that fails twice fails the run.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))
