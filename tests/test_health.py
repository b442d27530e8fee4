"""The health server's start: a taken port is a settings error naming HEALTH_PORT."""

from __future__ import annotations

import pytest

from consumer.errors import SettingsError
from consumer.health import HealthServer
from consumer.metrics import Metrics


async def test_a_taken_port_is_named_as_the_setting(taken_port: int) -> None:
    server = HealthServer(
        Metrics(), liveness=lambda: (True, ""), readiness=lambda: (True, ""), host="127.0.0.1"
    )

    with pytest.raises(SettingsError) as caught:
        await server.start(taken_port)

    assert str(caught.value) == (
        f"HEALTH_PORT={taken_port}: cannot listen on it: Address already in use"
    )
