"""How the AppMetrica client reads a throttled answer's Retry-After."""

from __future__ import annotations

import email.utils

import httpx
import pytest
from pydantic import SecretStr

from consumer.errors import RateLimited
from consumer.providers.appmetrica.client import AppMetricaClient
from consumer.settings import AppMetricaSettings


async def throttled_with(retry_after: str) -> RateLimited:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": retry_after}, json={"errors": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = AppMetricaClient(AppMetricaSettings(token=SecretStr("t")), http=http)
        with pytest.raises(RateLimited) as raised:
            await client.list_groups(1)
    return raised.value


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("12", 12.0),
        ("-3", 0.0),  # read as -3 s before: a wait that has already ended
        (email.utils.formatdate(0, usegmt=True), 0.0),  # a date in the past: ignored before
    ],
)
async def test_retry_after_is_read_in_seconds_or_as_a_date(header: str, expected: float) -> None:
    assert (await throttled_with(header)).retry_after == expected
