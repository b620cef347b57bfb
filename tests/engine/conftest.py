"""Fixtures for the rule engine tests: every engine test runs on both engines."""

from __future__ import annotations

import pytest

from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.port import EngineCore
from selfheal_kg.engine.reference import ReferenceEngine

ENGINES: dict[str, type[EngineCore]] = {
    "durable": DurableRuleEngine,
    "reference": ReferenceEngine,
}


@pytest.fixture(params=sorted(ENGINES))
def engine_cls(request: pytest.FixtureRequest) -> type[EngineCore]:
    """Each engine class in turn."""
    return ENGINES[request.param]
