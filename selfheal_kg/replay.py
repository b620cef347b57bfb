"""Replay a recording through the whole pipeline, on recorded time, executing nothing.

The clock is a ``FakeClock`` moved to each recorded request's time, the pipeline ticks every
``tick`` seconds of recorded time, and the runtime is in dry-run mode with an executor that
offers every action the playbooks name but is never called: what would have been done is
recorded, nothing is done. A minute of telemetry replays in well under a second or two.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfheal_kg.act.executor import ActionReport, Params
from selfheal_kg.clock import FakeClock
from selfheal_kg.config import Config
from selfheal_kg.errors import ActionError, FileLoadError
from selfheal_kg.kg import records
from selfheal_kg.model import FactValue
from selfheal_kg.monitor.recording import read_recordings
from selfheal_kg.runtime import Runtime


class DryRunExecutor:
    """Offers the given actions; executing one is a bug in dry-run mode and is refused."""

    def __init__(self, actions: frozenset[str]) -> None:
        self.actions = actions

    def snapshot(self, action: str, target: str, params: Params) -> dict[str, FactValue]:
        """Nothing to capture: nothing will change."""
        return {}

    def execute(self, action: str, target: str, params: Params) -> ActionReport:
        """Refuse: replay never acts."""
        raise ActionError(action, target, "replay is dry-run: nothing is executed")

    def restore(self, target: str, state: Mapping[str, FactValue]) -> ActionReport:
        """Nothing to restore."""
        return ActionReport(True, "dry run")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the replay saw and would have done."""

    requests: int
    ticks: int
    incidents: list[dict[str, Any]]


def replay(
    paths: Sequence[Path],
    config: Config,
    *,
    tick: float = 1.0,
    tail: float = 3.0,
    on_event: Callable[[str, dict[str, object]], None] | None = None,
) -> ReplayResult:
    """Run the recorded requests through a fresh dry-run runtime; return its incidents.

    ``tail`` seconds are ticked after the last request so a late incident is decided; keep it
    below the staleness limit, or every service would look down once the recording ends.
    """
    recs = read_recordings(paths)
    if not recs:
        raise FileLoadError(", ".join(map(str, paths)), "no recorded requests")
    clock = FakeClock(recs[0].t)
    probe = Runtime(config.with_overrides(dry_run=True), clock=clock, executors={})
    actions = frozenset(
        st.action for pb in probe.playbooks.values() for st in (*pb.steps, *pb.rollback)
    )
    probe.pipeline.close()
    rt = Runtime(
        config.with_overrides(dry_run=True),
        clock=clock,
        executors={a: DryRunExecutor(actions) for a in actions},
    )
    if on_event is not None:
        rt.on_event(on_event)
    next_tick, ticks = recs[0].t + tick, 0
    try:
        for rec in recs:
            while next_tick <= rec.t:
                clock.set(next_tick)
                rt.tick()
                rt.pipeline.wait_idle()
                next_tick, ticks = next_tick + tick, ticks + 1
            clock.set(max(rec.t, clock.now()))
            body = json.dumps(rec.body).encode()
            rt.intake.accept(rec.signal, body, "application/json", None)  # type: ignore[arg-type]
        end = _tail_end(rt, clock.now(), tail, tick, config.stale_after_seconds)
        while next_tick <= end:
            clock.set(next_tick)
            rt.tick()
            rt.pipeline.wait_idle()
            next_tick, ticks = next_tick + tick, ticks + 1
        incidents = records.list_incidents(rt.store, None, 1000)
    finally:
        rt.pipeline.close()
    return ReplayResult(len(recs), ticks, incidents)


def _tail_end(rt: Runtime, now: float, tail: float, tick: float, stale_after: float) -> float:
    """Return when to stop ticking: ``tail`` after the recording, unless that is too late.

    The services of a recording stop reporting up to an export interval apart; ticking past
    the staleness limit of the first to stop would find it down (an incident that never
    happened). Services already silent (a crash) do not count.
    """
    alive = [t for t in rt.series.last_seen().values() if now - t < stale_after]
    return min([now + tail, *(t + stale_after - tick for t in alive)])
