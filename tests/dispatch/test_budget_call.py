"""``Budget.call()``: a provider's own calls take places in the same window as requests."""

from __future__ import annotations

import asyncio

import pytest

from consumer.clock import FakeClock
from consumer.dispatch.budget import Budget
from consumer.providers.base import CallQuota


async def enter(
    quota: CallQuota, entered: list[float], clock: FakeClock, hold: asyncio.Event
) -> None:
    async with quota.call():
        entered.append(clock.monotonic())
        await hold.wait()


async def test_a_call_waits_for_a_free_place_and_holds_it_while_it_runs() -> None:
    clock = FakeClock()
    budget = Budget(limit=2, window_s=1.0, clock=clock, assume_window_used=False)
    entered: list[float] = []
    hold = asyncio.Event()
    start = clock.monotonic()
    calls = [asyncio.create_task(enter(budget, entered, clock, hold)) for _ in range(3)]
    await clock.advance(0)
    assert entered == [start, start]
    assert budget.used() == 2

    await clock.advance(5.0)  # both calls still running: nothing frees a place
    assert len(entered) == 2

    hold.set()  # they end now; a place frees one window later
    await clock.advance(0)
    await clock.advance(0.99)
    assert len(entered) == 2
    await clock.advance(0.05)
    assert len(entered) == 3
    assert entered[2] == pytest.approx(start + 6.0, abs=0.05)
    await asyncio.gather(*calls)
    assert budget.used() == 1  # the first two left the window; the third stays a window


async def test_a_call_shares_the_window_with_the_dispatchers_requests() -> None:
    clock = FakeClock()
    budget = Budget(limit=1, window_s=2.0, clock=clock, assume_window_used=False)
    request = budget.try_start()  # the dispatcher's send, on the wire
    assert request is not None
    entered: list[float] = []
    hold = asyncio.Event()
    hold.set()
    poll = asyncio.create_task(enter(budget, entered, clock, hold))

    await clock.advance(3.0)
    assert entered == []
    budget.finish(request)
    await clock.advance(1.9)
    assert entered == []
    await clock.advance(0.2)
    assert len(entered) == 1
    await poll
    assert budget.try_start() is None  # the poll's place is counted too


async def test_a_cancelled_wait_takes_no_place() -> None:
    clock = FakeClock()
    budget = Budget(limit=1, window_s=1.0, clock=clock)  # starts full
    entered: list[float] = []
    waiting = asyncio.create_task(enter(budget, entered, clock, asyncio.Event()))
    await clock.advance(0.5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await clock.advance(0.6)
    assert entered == []
    assert budget.used() == 0
