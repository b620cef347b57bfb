"""Shared helpers for the rule engine tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from selfheal_kg.engine.durable import DurableRuleEngine
from selfheal_kg.engine.port import EngineCore
from selfheal_kg.engine.reference import ReferenceEngine

ENGINES = {"durable": DurableRuleEngine, "reference": ReferenceEngine}


@pytest.fixture(params=sorted(ENGINES))
def engine_cls(request: pytest.FixtureRequest) -> type[EngineCore]:
    return ENGINES[request.param]


@pytest.fixture
def make(engine_cls: type[EngineCore]) -> Iterator[type[EngineCore]]:
    yield engine_cls


