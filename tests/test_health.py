"""The health server's start: a taken port is a settings error naming HEALTH_PORT."""

from __future__ import annotations

import socket

import pytest

from consumer.errors import SettingsError
from consumer.health import HealthServer
from consumer.metrics import Metrics


async def test_a_taken_port_is_named_as_the_setting() -> None:
    server = HealthServer(
        Metrics(), liveness=lambda: (True, ""), readiness=lambda: (True, ""), host="127.0.0.1"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(SettingsError) as caught:
            await server.start(port)

    assert str(caught.value) == f"HEALTH_PORT={port}: cannot listen on it: Address already in use"
