"""Replays of every demo fault: the recorded telemetry yields the right incident, in dry run.

Each fixture was recorded with ``scripts/record_fixture.py`` on the live shop (warm-up, the
fault on its scenario's target, its revert). Replaying it runs the whole pipeline on recorded
time, deterministically and in about a second: the root cause ranked first must be the
scenario's (``SCENARIOS`` in ``selfheal_kg/demo/show.py``), with the diagnosed pattern there
and the playbook chosen for it (none, an escalation, for the provider outage), and no step
may have been executed for real.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from selfheal_kg.config import Config
from selfheal_kg.demo.show import ESCALATES, SCENARIOS, TREND_HORIZON
from selfheal_kg.incident import Incident
from selfheal_kg.model import Decision, Diagnosis, StepResult
from selfheal_kg.monitor.recording import read_recordings
from selfheal_kg.paths import shipped
from selfheal_kg.replay import replay

FIXTURES = Path(__file__).parent

UNSETTLED = "?"
# fault → (pattern diagnosed at the root, playbook chosen; None: escalated to a human)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "crash": ("ServiceDown", "restart-service"),
    "bad-config": ("HighErrorRate", "config-rollback"),
    "provider-outage": ("HighErrorRate", None),
    "overload": ("Overload", "scale-out-replicas"),
    "leak": ("ResourceExhaustion", "restart-before-exhaustion"),
    # a leaf turned slow by itself, one process: restarted (recover-instance is for one
    # instance of several; scale-out needs kubectl, which the demo has not)
    "slow-leaf": ("HighLatency", "restart-slow-service"),
    "dropped-index": ("SlowQuery", "add-missing-index"),
    # payment's traffic collapses too (checkout fails before calling it): a ServiceDown
    # there, collateral of the failing caller, tied with inventory before
    "pool-exhaustion": ("PoolExhaustion", "resize-connection-pool"),
    # one instance's series fail, the other's do not: the recovery chain (the requirement
    # outlier-instance is judged on the recorded telemetry, so the replay decides as live)
    "bad-instance": ("HighErrorRate", "recover-instance"),
}


@dataclass
class Seen:
    """What the replayed pipeline decided, in order."""

    decided: list[tuple[Incident, Decision]] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    diagnosed: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, kind: str, payload: dict[str, object]) -> None:
        inc, decision, step = payload.get("incident"), payload.get("decision"), payload.get("step")
        if kind == "decision" and isinstance(inc, Incident) and isinstance(decision, Decision):
            self.decided.append((inc, decision))
        if kind == "step" and isinstance(step, StepResult):
            self.steps.append(step)
        diagnosis = payload.get("diagnosis")
        if kind == "diagnosis" and isinstance(diagnosis, Diagnosis):
            self.diagnosed.append((diagnosis.pattern, diagnosis.at))


def config() -> Config:
    """Return the demo's configuration, without the live shop."""
    return Config(
        topology_files=(shipped("demo") / "topology.ttl",),
        trend_horizon_seconds=TREND_HORIZON,
    )


def test_every_expected_fault_is_a_scenario_with_a_small_fixture() -> None:
    assert set(EXPECTED) <= set(SCENARIOS)
    for fault in EXPECTED:
        fixture = FIXTURES / f"{fault}.jsonl.gz"
        assert fixture.exists(), f"no recording for {fault}"
        assert fixture.stat().st_size < 300_000


@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_recorded_fault_replays_to_the_expected_incident(fault: str) -> None:
    seen = Seen()
    result = replay([FIXTURES / f"{fault}.jsonl.gz"], config(), on_event=seen)
    pattern, playbook = EXPECTED[fault]
    root = SCENARIOS[fault][1]
    # the fault's incident: the first one decided where its pattern was diagnosed (a
    # warm-up jitter may open an unrelated incident before it)
    ours = [(i, d) for i, d in seen.decided if pattern in {x.pattern for x in i.diagnoses}]
    assert ours, f"{fault}: no incident with a {pattern} diagnosis; decided: {_summary(seen)}"
    inc, decision = ours[0]
    assert inc.root_causes[0].node == root, _summary(seen)
    assert inc.root_causes[0].rank == 1
    assert inc.root_causes[0].explanation
    assert inc.pattern_at(root) == pattern
    chosen = decision.chosen.playbook if decision.chosen else None
    assert playbook == UNSETTLED or chosen == playbook, decision
    if fault in ESCALATES:
        assert not [s for s in seen.steps if s.target == root]
    assert all(s.dry_run for s in seen.steps), "replay executed a step"
    assert result.requests > 100
    # the services stop reporting a little apart at the recording's end: not an outage
    end = read_recordings([FIXTURES / f"{fault}.jsonl.gz"])[-1].t
    assert not [p for p, at in seen.diagnosed if p == "ServiceDown" and at > end - 1.0]


# second recordings of the flaky faults, each ranked wrong by the RCA before this fix (the
# root it ranked first then): overload (payment: a p95 blip of it was unexplained while
# checkout's latency was "explained" by inventory's), slow-leaf (inventory-db: a jitter of
# inventory's queries opened a SlowQuery and the database was inferred, though the queries
# slowed 0.1 ms and the answers 300 ms), dropped-index (payment: a p95 blip outranked the
# database inferred at half its caller's score)
SECOND_RUNS = {"overload-2": "overload", "slow-leaf-2": "slow-leaf",
               "dropped-index-2": "dropped-index"}


@pytest.mark.parametrize("recording", sorted(SECOND_RUNS))
def test_second_recording_of_a_flaky_fault_roots_right(recording: str) -> None:
    fault = SECOND_RUNS[recording]
    seen = Seen()
    replay([FIXTURES / f"{recording}.jsonl.gz"], config(), on_event=seen)
    assert seen.decided, "no incident decided"
    inc = seen.decided[0][0]
    assert inc.root_causes[0].node == SCENARIOS[fault][1], _summary(seen)
    assert all(s.dry_run for s in seen.steps)


# the recorder starts with the warm-up: the fault is injected this long after the first request
INJECTED_AFTER = 19.5


@pytest.mark.parametrize(
    ("fault", "slowed", "root"),
    [
        # the overload's CPU contention slows inventory too, as early as checkout: inventory
        # shows only latency, like its overloaded caller (ranked inventory first before)
        ("overload", "inventory", "checkout"),
        # payment turns slow (a diagnosed HighLatency) while the index is dropped: the
        # database, behind its caller's SlowQuery, stays first (ranked payment first before)
        ("dropped-index", "payment", "inventory-db"),
    ],
)
def test_fault_with_a_concurrent_slowdown_keeps_its_root(
    fault: str, slowed: str, root: str, tmp_path: Path
) -> None:
    fixture = tmp_path / f"{fault}-{slowed}.jsonl.gz"
    slow_down(FIXTURES / f"{fault}.jsonl.gz", fixture, slowed, factor=4.0)
    seen = Seen()
    replay([fixture], config(), on_event=seen)
    pattern = EXPECTED[fault][0]
    ours = [i for i, _ in seen.decided if pattern in {x.pattern for x in i.diagnoses}]
    assert ours, _summary(seen)
    assert slowed in {c.node for c in ours[0].root_causes}, "the slowdown did not show"
    assert ours[0].root_causes[0].node == root, _summary(seen)


def slow_down(src: Path, dst: Path, service: str, factor: float, seconds: float = 15.0) -> None:
    """Copy a recording, ``service``'s server durations ``factor`` times longer for a while.

    From the injection on, for ``seconds``: the cumulative histogram sums grow ``factor``
    times as fast (the mean duration is ``factor`` times longer), then as before.
    """
    with gzip.open(src, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = json.loads(lines[0])["t"] + INJECTED_AFTER
    base: dict[str, float] = {}
    extra: dict[str, float] = {}
    out = []
    for line in lines:
        rec = json.loads(line)
        for key, point in _duration_points(rec["body"], service):
            if rec["t"] < start:
                base[key] = point["sum"]
            elif rec["t"] <= start + seconds:
                extra[key] = (factor - 1) * (point["sum"] - base.get(key, point["sum"]))
            point["sum"] += extra.get(key, 0.0)
        out.append(json.dumps(rec))
    with gzip.open(dst, "wt", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def _duration_points(body: dict[str, Any], service: str) -> list[tuple[str, dict[str, Any]]]:
    """Return (series key, data point) of ``service``'s server duration histograms."""
    out = []
    for rm in body.get("resourceMetrics", []):
        attrs = {a["key"]: a["value"].get("stringValue") for a in rm["resource"]["attributes"]}
        if attrs.get("service.name") != service:
            continue
        for sm in rm["scopeMetrics"]:
            for m in sm["metrics"]:
                if m["name"] != "http.server.request.duration":
                    continue
                for p in m["histogram"]["dataPoints"]:
                    key = json.dumps([attrs.get("service.instance.id"), p.get("attributes")])
                    out.append((key, p))
    return out


def _summary(seen: Seen) -> list[tuple[str, list[str], str | None]]:
    return [
        (inc.id, [c.node for c in inc.root_causes], d.chosen.playbook if d.chosen else None)
        for inc, d in seen.decided
    ]
