"""The shop service's simulated memory: a steady level, a linear leak, out of memory at 1.0."""

from __future__ import annotations

import sys
import threading

import pytest

from selfheal_kg.paths import shipped

# the shop's scripts are not a package: import them as service.py does
sys.path.insert(0, str(shipped("demo") / "shop"))
from memory import BASE_UTILIZATION, Memory, watch


class Ticks:
    """A controllable monotonic clock."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_memory_stays_steady_without_a_leak() -> None:
    clock = Ticks()
    memory = Memory(now=clock)
    clock.t += 3600
    assert memory.utilization() == BASE_UTILIZATION
    assert not memory.exhausted()


def test_a_leak_grows_linearly_and_runs_out_at_the_limit() -> None:
    clock = Ticks()
    memory = Memory(base=0.25, now=clock)
    memory.set_leak(0.005)
    clock.t += 100
    assert memory.utilization() == pytest.approx(0.75)
    memory.set_leak(0.01)  # a faster leak keeps what the slower one took
    clock.t += 10
    assert memory.utilization() == pytest.approx(0.85)
    clock.t += 1000
    assert memory.utilization() == 1.0
    assert memory.exhausted()


def test_stopping_the_leak_frees_it() -> None:
    clock = Ticks()
    memory = Memory(base=0.25, now=clock)
    memory.set_leak(0.005)
    clock.t += 60
    memory.set_leak(0.0)
    assert memory.leak() == 0.0
    assert memory.utilization() == 0.25


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_leak_out_of_range_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="leak_per_s"):
        Memory().set_leak(rate)


def test_watch_reports_running_out_once() -> None:
    clock = Ticks()
    memory = Memory(base=0.25, now=clock)
    calls: list[float] = []
    done = threading.Event()

    def on_exhausted() -> None:
        calls.append(memory.utilization())
        done.set()

    watch(memory, on_exhausted, period=0.01)
    memory.set_leak(0.5)
    clock.t += 2
    assert done.wait(5.0)
    assert calls == [1.0]
