"""The IMSHOP provider against the simulator over real HTTP: each answer class."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from consumer.errors import (
    FatalError,
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from consumer.local.simulators.imshop import Faults, ImshopSimulator, SimulatorConfig
from consumer.providers.base import Envelope, retry_after_s
from consumer.providers.imshop import ImshopProvider
from consumer.push import Message
from consumer.settings import ImshopSettings

ENVELOPE = Envelope(
    Message("Заказ 1042 в пути", "Курьер приедет завтра", "imshop://orders/1042"),
    ("79990000001", "ed6b1eec-082f-4880-9100-bcd8e2016cd1"),
    (),
)


@pytest.fixture
async def sim() -> AsyncIterator[ImshopSimulator]:
    async with ImshopSimulator(SimulatorConfig(api_key="K", rate_limit=100)) as made:
        yield made


def _provider(url: str, key: str = "K", timeout_s: float = 2.0) -> ImshopProvider:
    return ImshopProvider(ImshopSettings(url=url, api_key=SecretStr(key), timeout_s=timeout_s))


@pytest.fixture
async def provider(sim: ImshopSimulator) -> AsyncIterator[ImshopProvider]:
    made = _provider(sim.url, timeout_s=0.5)
    yield made
    await made.aclose()


async def test_a_push_goes_out_in_the_documented_shape(
    sim: ImshopSimulator, provider: ImshopProvider
) -> None:
    await provider.send([ENVELOPE])

    (push,) = sim.pushes
    assert push["userIds"] == list(ENVELOPE.recipients)
    assert push["message"] == {"title": "Заказ 1042 в пути", "summary": "Курьер приедет завтра"}
    assert push["deeplink"] == "imshop://orders/1042"


async def test_no_deeplink_means_no_deeplink_field(
    sim: ImshopSimulator, provider: ImshopProvider
) -> None:
    await provider.send([Envelope(Message("t", "s"), ("1",), ())])

    assert "deeplink" not in sim.pushes[0]


@pytest.mark.parametrize(
    ("fault", "error", "reason"),
    [
        ("unavailable", ProviderUnavailable, "provider_unavailable"),
        ("http_500", OutcomeUnknown, "outcome_unknown"),
        ("http_503", OutcomeUnknown, "outcome_unknown"),
        ("timeout", OutcomeUnknown, "outcome_unknown"),
        ("lost_answer", OutcomeUnknown, "outcome_unknown"),
        ("reset", OutcomeUnknown, "outcome_unknown"),
    ],
)
async def test_transient_answers_say_whether_the_push_may_have_gone_out(
    sim: ImshopSimulator,
    provider: ImshopProvider,
    fault: str,
    error: type[Exception],
    reason: str,
) -> None:
    sim.set_faults(Faults(script=[fault], hang_s=3))

    with pytest.raises(error) as raised:
        await provider.send([ENVELOPE])

    assert type(raised.value) is error
    assert raised.value.reason == reason  # type: ignore[attr-defined]


async def test_a_429_is_rate_limited_with_retry_after(
    sim: ImshopSimulator, provider: ImshopProvider
) -> None:
    sim.set_faults(Faults(script=["rate_limited"], retry_after_s=7))

    with pytest.raises(RateLimited) as raised:
        await provider.send([ENVELOPE])

    assert raised.value.retry_after == 7


async def test_a_400_is_permanent_and_keeps_the_joi_message(sim: ImshopSimulator) -> None:
    provider = _provider(sim.url)
    too_many = Envelope(Message("t", "s"), tuple(str(i) for i in range(1001)), ())
    try:
        with pytest.raises(ProviderRejected) as raised:
            await provider.send([too_many])
    finally:
        await provider.aclose()

    assert raised.value.status == 400
    assert "must contain less than or equal to 1000 items" in str(raised.value)
    assert '"Bad Request"' in raised.value.body


async def test_a_refused_key_is_fatal(sim: ImshopSimulator) -> None:
    provider = _provider(sim.url, key="wrong")
    try:
        with pytest.raises(FatalError) as raised:
            await provider.send([ENVELOPE])
    finally:
        await provider.aclose()

    assert str(raised.value).startswith(
        "IMSHOP answered HTTP 401 (key refused: check IMSHOP_API_KEY): "
    )


async def test_a_wrong_path_is_fatal_and_names_the_url_setting(sim: ImshopSimulator) -> None:
    provider = _provider(sim.base_url + "/wrong-path")
    try:
        with pytest.raises(FatalError) as raised:
            await provider.send([ENVELOPE])
    finally:
        await provider.aclose()

    assert str(raised.value).startswith("IMSHOP answered HTTP 404 (wrong URL: check IMSHOP_URL): ")


async def test_a_closed_port_is_unavailable_and_surely_not_processed(closed_port: int) -> None:
    provider = _provider(f"http://127.0.0.1:{closed_port}/push")
    try:
        with pytest.raises(ProviderUnavailable) as raised:
            await provider.send([ENVELOPE])
    finally:
        await provider.aclose()

    assert type(raised.value) is ProviderUnavailable


async def test_an_unexpected_2xx_body_is_an_unknown_outcome() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = ImshopProvider(ImshopSettings(url="http://imshop.test/push"), client)
        with pytest.raises(OutcomeUnknown, match="unexpected body"):
            await provider.send([ENVELOPE])


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_s("12") == 12
    assert retry_after_s(None) is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_s("soon") is None
