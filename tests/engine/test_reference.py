"""The reference engine agrees with durable-rules on every fixture, firing by firing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.fixtures import Fixture, firing_key, load_fixture, run_fixture, run_steps
from selfheal_kg.engine.reference import ReferenceEngine
from selfheal_kg.paths import shipped

FIXTURES = [
    *sorted((shipped("rules") / "tests").glob("*.yaml")),
    Path(__file__).with_name("feature_cases.yaml"),
]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_reference_passes_every_fixture(path: Path) -> None:
    results = run_fixture(load_fixture(path), ReferenceEngine)
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_durable_and_reference_agree_step_by_step(path: Path) -> None:
    fixture = load_fixture(path)
    for case in fixture.cases:
        assert _trace(fixture, case, DurableRuleEngine) == _trace(fixture, case, ReferenceEngine)


Trace = list[tuple[str, float, list[str]]]


def _trace(fixture: Fixture, case: Mapping[str, Any], make: type) -> Trace:
    engine = make()
    engine.load(fixture.ruleset)
    firings = run_steps(engine, case["steps"])
    return [(firing_key(f), f.at, [str(x["id"]) for x in f.facts]) for f in firings]
