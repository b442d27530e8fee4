"""The writer: history first, then the dispatcher; outages wait and retry, order is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from history_support import job

from consumer.clock import FakeClock
from consumer.errors import HistoryRejected, HistoryUnavailable
from consumer.history.entry import HistoryEntry, HistoryItem
from consumer.history.writer import HistoryWriter
from consumer.metrics import Metrics
from consumer.push import PushJob


class FakeStore:
    """Records each write; fails while ``down``; refuses entries of the named events."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.down = False
        self.refused: set[str] = set()
        self.gate: asyncio.Event | None = None  # when set, a write waits for it

    async def write(self, entries: Sequence[HistoryEntry]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise HistoryUnavailable("writing at sqlite:///h failed: disk I/O error")
        ids = [e.event_id for e in entries]
        if self.refused & set(ids):
            raise HistoryRejected("writing: the database refused it")
        self.writes.append(ids)

    async def lookup(self, user_id: str, *, limit: int, since_ms: int) -> list[HistoryItem]:
        return []

    async def mark_read(self, user_id: str, ids: Sequence[str], *, at_ms: int) -> int:
        return 0

    async def prune_users(self, user_ids: Sequence[str], *, keep: int) -> int:
        return 0

    async def prune_before(self, cutoff_ms: int, *, limit: int) -> int:
        return 0

    async def aclose(self) -> None:
        return None


class Harness:
    def __init__(self) -> None:
        self.store = FakeStore()
        self.clock = FakeClock()
        self.metrics = Metrics()
        self.released: list[str] = []
        self.rejected: list[tuple[str, str]] = []
        self.touched: set[str] = set()
        self.writer = HistoryWriter(
            self.store,
            release=lambda j: self.released.append(j.event_id),
            reject=lambda j, e: self.rejected.append((j.event_id, e.reason)),
            metrics=self.metrics,
            clock=self.clock,
            retry_initial_s=1.0,
            retry_max_s=8.0,
            on_written=self.touched.update,
        )


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    task = asyncio.create_task(harness.writer.run())
    yield harness
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def batch(*ids: str, **options: object) -> list[PushJob]:
    return [job(i, **options) for i in ids]  # type: ignore[arg-type]


async def test_a_batch_is_written_in_one_write_then_handed_on_in_order(h: Harness) -> None:
    h.writer.submit(batch("a", "b", "c"))
    assert h.released == []
    assert h.writer.waiting == 3

    await settle()

    assert h.store.writes == [["a", "b", "c"]]
    assert h.released == ["a", "b", "c"]
    assert h.writer.waiting == 0
    assert h.touched == {"u1"}
    assert h.metrics.value("history_items_written_total") == 3


async def test_batches_that_queue_behind_a_slow_write_go_in_one_transaction(h: Harness) -> None:
    h.store.gate = asyncio.Event()
    h.writer.submit(batch("a"))
    await settle()
    h.writer.submit(batch("b"))
    h.writer.submit(batch("c", "d"))
    await settle()
    h.store.gate.set()
    await settle()

    assert h.store.writes == [["a"], ["b", "c", "d"]]
    assert h.released == ["a", "b", "c", "d"]


async def test_jobs_without_an_item_pass_straight_on_when_nothing_waits(h: Harness) -> None:
    h.writer.submit(
        batch("opted-out", history=None) + batch("anonymous", user=None, install_id="i")
    )

    assert h.released == ["opted-out", "anonymous"], "no detour through the writer"
    assert h.store.writes == []


async def test_jobs_without_an_item_keep_their_place_behind_waiting_ones(h: Harness) -> None:
    h.store.down = True
    h.writer.submit(batch("a"))
    await settle()
    h.writer.submit(batch("opted-out", history=None))
    await settle()
    assert h.released == []

    h.store.down = False
    await h.clock.advance(1.0)
    await settle()

    assert h.released == ["a", "opted-out"]


async def test_only_a_job_whose_item_is_written_may_go_out_as_its_shared_text(
    h: Harness,
) -> None:
    # The shared text says «details are in your notifications»: true only once written.
    written, opted_out, anonymous, refused = (
        batch("written")
        + batch("opted-out", history=None)
        + batch("anonymous", user=None, install_id="i")
        + batch("refused")
    )
    h.store.refused = {"refused"}
    for one in (written, opted_out, anonymous, refused):
        assert not one.in_history
    h.writer.submit([written, opted_out, anonymous, refused])
    await settle()

    assert h.released == ["written", "opted-out", "anonymous"]
    assert h.rejected == [("refused", "history_rejected")]
    assert [written.in_history, opted_out.in_history, anonymous.in_history] == [True, False, False]
    assert not refused.in_history


async def test_while_the_database_is_down_nothing_goes_on_and_writes_back_off(
    h: Harness,
) -> None:
    h.store.down = True
    h.writer.submit(batch("a", "b"))
    await settle()

    waits = []
    for _ in range(5):
        wake = h.clock.next_wakeup
        assert wake is not None
        waits.append(wake - h.clock.monotonic())
        await h.clock.advance(wake - h.clock.monotonic())
        await settle()

    assert h.released == []
    assert h.writer.waiting == 2
    assert h.writer.failing_for(h.clock.monotonic()) > 0
    assert "disk I/O error" in (h.writer.last_error or "")
    assert h.metrics.value("history_write_failures_total") == 6
    # Equal jitter: each wait is between half and all of 1, 2, 4, 8, 8 seconds.
    for wait, step in zip(waits, [1, 2, 4, 8, 8], strict=True):
        assert step / 2 <= wait <= step

    h.store.down = False
    await h.clock.advance(8.0)
    await settle()

    assert h.store.writes == [["a", "b"]]
    assert h.released == ["a", "b"]
    assert h.writer.failing_for(h.clock.monotonic()) == 0
    assert h.writer.last_error is None


async def test_an_entry_the_database_refuses_dead_letters_only_its_own_event(h: Harness) -> None:
    h.store.refused = {"bad"}
    h.writer.submit(batch("a", "bad", "c"))
    await settle()

    assert h.store.writes == [["a"], ["c"]]
    assert h.released == ["a", "c"]
    assert h.rejected == [("bad", "history_rejected")]
    assert h.writer.waiting == 0


async def test_revoked_partitions_jobs_are_dropped_while_they_wait(h: Harness) -> None:
    h.store.down = True
    h.writer.submit(batch("p0", partition=0) + batch("p1", partition=1))
    await settle()
    h.writer.submit(batch("p1-later", partition=1))

    assert h.writer.drop_partitions({("orders", 1)}) == 2
    assert h.writer.waiting == 1

    h.store.down = False
    await h.clock.advance(1.0)
    await settle()

    assert h.released == ["p0"]
    assert h.writer.waiting == 0


async def test_flush_waits_until_everything_is_handed_on(h: Harness) -> None:
    h.store.gate = asyncio.Event()
    h.writer.submit(batch("a"))
    assert not await h.writer.flush(0.01)

    h.store.gate.set()

    assert await h.writer.flush(1.0)
    assert h.released == ["a"]
