"""Replay of a recorded demo crash: the whole pipeline, recorded time, nothing executed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfheal_kg.clock import FakeClock
from selfheal_kg.config import Config
from selfheal_kg.errors import FileLoadError
from selfheal_kg.monitor.recording import JsonlRecorder, read_recordings
from selfheal_kg.paths import shipped
from selfheal_kg.replay import replay

FIXTURES = Path(__file__).parent / "replay"


def test_recorded_crash_replays_to_one_dry_run_restart_of_the_root() -> None:
    events: list[str] = []
    result = replay(
        [FIXTURES / "crash.jsonl.gz"],
        Config(topology_files=(shipped("demo") / "topology.ttl",)),
        on_event=lambda kind, _p: events.append(kind),
    )
    assert result.requests > 100
    assert len(result.incidents) == 1
    inc = result.incidents[0]
    assert inc["root"] == "inventory"
    assert inc["playbook"] == "restart-service"
    assert inc["status"] == "resolved"
    assert events.index("diagnosis") < events.index("rca") < events.index("step")


def test_recorder_round_trip_and_bad_lines(tmp_path: Path) -> None:
    clock = FakeClock(100.0)
    rec = JsonlRecorder(tmp_path / "r.jsonl", clock, signals={"metrics"})
    rec("metrics", {"resourceMetrics": []})
    clock.advance(1.0)
    rec("traces", {"resourceSpans": []})  # not selected: skipped
    rec.close()
    got = read_recordings([tmp_path / "r.jsonl"])
    assert [(r.t, r.signal) for r in got] == [(100.0, "metrics")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"t": 1, "signal": "metrics", "body": {}}) + "\nnot json\n")
    with pytest.raises(FileLoadError) as err:
        read_recordings([bad])
    assert err.value.line == 2


def test_replay_of_nothing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(FileLoadError):
        replay([tmp_path / "empty.jsonl"], Config())
