"""Fixtures of the end-to-end tests: fresh topics and an IMSHOP simulator per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from e2e_harness import Topics, make_topics

from consumer.local.simulators.imshop import ImshopSimulator, SimulatorConfig


@pytest.fixture
async def topics(topic_factory: Any, unique_name: Callable[[str], str]) -> Topics:
    return await make_topics(topic_factory, unique_name)


@pytest.fixture
async def imshop() -> AsyncIterator[ImshopSimulator]:
    """5 requests per second: tests see the budget at work within seconds."""
    async with ImshopSimulator(
        SimulatorConfig(api_key="test-key", rate_limit=5, window_s=1.0)
    ) as simulator:
        yield simulator
