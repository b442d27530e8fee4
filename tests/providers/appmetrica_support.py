"""Builders shared by the AppMetrica tests: jobs, envelopes, a provider on a fake clock.

The provider, its quota (a real ``Budget``) and the simulator's status steps and
per-second quota all run on one ``FakeClock``. A test moves time with ``advance``,
which then waits until the HTTP calls that came due have been answered: the
provider's client counts its requests in flight (``CountingTransport``), and
the rig is quiet once none is, and none starts while the event loop turns a
few more times. No wall-clock waits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from consumer.clock import FakeClock
from consumer.dispatch.budget import Budget
from consumer.events import Device, Recipient
from consumer.local.simulators.appmetrica import AppMetricaSimulator
from consumer.local.simulators.appmetrica_model import SimulatorConfig
from consumer.metrics import Metrics
from consumer.providers.appmetrica import AppMetricaProvider
from consumer.providers.base import Envelope
from consumer.push import Message, Origin, PushClass, PushJob, RenderedPush
from consumer.settings import AppMetricaSettings

TOKEN = "sim-token"
APP_ID = 7
SEND = "POST /push/v1/send-batch"
POLL = "GET /push/v1/status/{transfer_id}"
LOOKUP = "GET /push/v1/status/{group_id}/{ctid}"
ALL_TYPES = [
    "appmetrica_device_id",
    "ios_ifa",
    "google_aid",
    "android_push_token",
    "ios_push_token",
    "huawei_push_token",
    "huawei_oaid",
]
SETTLE_S = 10.0  # bound on waiting for loopback HTTP answers; never reached when all is well
_TURNS = 20  # event-loop turns in which a woken task reaches its next request, if any


def job(
    event_id: str,
    devices: list[tuple[str, str]],
    *,
    title: str = "Заказ собран",
    rule: str = "order_ready",
    push_class: PushClass = PushClass.TRANSACTIONAL,
    extras: Any = None,
) -> PushJob:
    push = RenderedPush(
        rule_id=rule,
        message=Message(title, "Можно забирать", "imshop://orders/1"),
        push_class=push_class,
        ttl_s=3600,
        extras={"appmetrica": extras} if extras is not None else {},
    )
    return PushJob(
        origin=Origin("orders", 0, int(event_id.strip("e") or 0)),
        event_id=event_id,
        event_type="order.status_changed",
        recipient=Recipient(user_id="u1", devices=[Device(id_type=t, id=i) for t, i in devices]),
        push=push,
        occurred_at=dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC),
    )


def envelope(provider: AppMetricaProvider, *jobs: PushJob) -> Envelope:
    """What the dispatcher hands over: the jobs of one coalesce key, their recipients."""
    recipients = tuple(dict.fromkeys(r for j in jobs for r in provider.recipients(j)))
    return Envelope(jobs[0].push.message, recipients, jobs)


class _CountedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._stream, self._done = stream, done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._done()


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts requests from their start until their answer has been read and closed."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.idle.clear()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._ended()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CountedStream(response.stream, self._ended),
            extensions=response.extensions,
        )

    def _ended(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.idle.set()

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class Rig:
    clock: FakeClock
    sim: AppMetricaSimulator
    budget: Budget
    transport: CountingTransport
    http: httpx.AsyncClient
    metrics: Metrics = field(default_factory=Metrics)
    made: list[AppMetricaProvider] = field(default_factory=list)

    def provider(self, **overrides: Any) -> AppMetricaProvider:
        values: dict[str, Any] = {
            "url": self.sim.base_url,
            "token": TOKEN,
            "app_id": APP_ID,
            "status_poll_initial_s": 2.0,
            "status_poll_max_s": 8.0,
            "status_timeout_s": 60.0,
            "timeout_s": 5.0,
        }
        made = AppMetricaProvider(
            AppMetricaSettings(**(values | overrides)),
            quota=self.budget,
            metrics=self.metrics,
            clock=self.clock,
            http=self.http,
        )
        self.made.append(made)
        return made

    def calls(self, route: str = SEND) -> int:
        return self.sim.state.requests.get(route, 0)

    async def advance(self, seconds: float) -> None:
        """Move time on, then wait until the calls that came due have been answered."""
        await self.clock.advance(seconds)
        await self.quiet()

    async def quiet(self) -> None:
        """Return once no request is in flight and none starts within a few loop turns."""
        while True:
            await asyncio.wait_for(self.transport.idle.wait(), SETTLE_S)
            for _ in range(_TURNS):
                await asyncio.sleep(0)
            if not self.transport.in_flight:
                return


@asynccontextmanager
async def rig(*, limit: int = 20, config: SimulatorConfig | None = None) -> AsyncIterator[Rig]:
    clock = FakeClock()
    config = config or SimulatorConfig(token=TOKEN, status_step_s=1.0)
    budget = Budget(limit=limit, window_s=1.0, clock=clock, assume_window_used=False)
    transport = CountingTransport()
    async with (
        AppMetricaSimulator(config, clock=clock.monotonic) as sim,
        httpx.AsyncClient(transport=transport) as http,
    ):
        made = Rig(clock, sim, budget, transport, http)
        try:
            yield made
        finally:
            for provider in made.made:
                await provider.aclose()
