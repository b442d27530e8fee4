"""The history goes in before the push goes out: one write per fetched batch.

The consume loop hands each fetched batch's rendered jobs to ``submit``. The
writer keeps them, in order, until their entries are in the database (one
transaction for the batch, or for several batches queued while it was busy),
and only then hands the jobs on to the dispatcher. So an event's offset can
become committable (it needs an outcome, which needs the dispatcher) only once
its history is written, and when the dispatcher decides a push the customer's
history already shows it.

While the database is unreachable the write is retried with backoff, the
batches wait here (``waiting`` counts them against the pending bound, so
fetching pauses) and nothing is committed; when it is back they are written and
go on, in order. A batch the database refuses for its data is written entry by
entry, and only an entry it refuses on its own is dead-lettered (with its job).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from consumer.clock import Clock
from consumer.dispatch.retry import RetryPolicy
from consumer.errors import HistoryRejected, HistoryUnavailable
from consumer.history.entry import HistoryEntry, entry_for
from consumer.history.store import HistoryStore
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.push import PushJob

log = get_logger(__name__)

Release = Callable[[PushJob], None]
Reject = Callable[[PushJob, HistoryRejected], None]
MAX_ENTRIES_PER_WRITE = 5_000


@dataclass(slots=True)
class _Batch:
    jobs: list[PushJob]
    entries: list[tuple[PushJob, HistoryEntry]]


class HistoryWriter:
    def __init__(
        self,
        store: HistoryStore,
        *,
        release: Release,
        reject: Reject,
        metrics: Metrics,
        clock: Clock,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        on_written: Callable[[Iterable[str]], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._release = release
        self._reject = reject
        self._metrics = metrics
        self._clock = clock
        self._retry = RetryPolicy(initial_backoff_s=retry_initial_s, max_backoff_s=retry_max_s)
        self._on_written = on_written
        self._rng = rng or random.Random()
        self._queue: deque[_Batch] = deque()
        self._writing: list[_Batch] = []
        self._waiting = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failing_since: float | None = None
        self.last_error: str | None = None

    # ---- what the consume loop uses

    def submit(self, jobs: list[PushJob]) -> None:
        """Take one fetched batch's jobs; they go on once their history is written."""
        if not jobs:
            return
        entries = [(job, entry) for job in jobs if (entry := entry_for(job)) is not None]
        if not entries and not self._queue and not self._writing:
            for job in jobs:  # nothing to write and nothing ahead of them: no detour
                self._release(job)
            return
        self._queue.append(_Batch(jobs, entries))
        self._count(len(jobs))
        self._idle.clear()
        self._wake.set()

    @property
    def waiting(self) -> int:
        """Events held here until their history is written (the pending bound counts them)."""
        return self._waiting

    def failing_for(self, now: float) -> float:
        """Seconds history writes have been failing without a success (0 if they are not)."""
        return 0.0 if self._failing_since is None else now - self._failing_since

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> int:
        """Forget the jobs of revoked partitions: their new owner handles them.

        Their entries may still be written (an idempotent write, as the new
        owner's will be); only the jobs are not handed on.
        """
        dropped = 0
        for batch in (*self._queue, *self._writing):
            kept = [j for j in batch.jobs if (j.origin.topic, j.origin.partition) not in partitions]
            dropped += len(batch.jobs) - len(kept)
            batch.jobs = kept
        if dropped:
            self._count(-dropped)
            log.info("history_waiting_dropped", jobs=dropped, partitions=sorted(partitions))
        return dropped

    async def flush(self, timeout_s: float) -> bool:
        """Wait (bounded) until every submitted batch is written and handed on."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # ---- the loop

    async def run(self) -> None:
        """Write queued batches in order, several at once when they piled up."""
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._writing = self._take()
            entries = [entry for batch in self._writing for _, entry in batch.entries]
            rejected = await self._write_until_done(entries, self._writing)
            written, self._writing = self._writing, []
            self._hand_on(written, rejected)

    def _take(self) -> list[_Batch]:
        taken = [self._queue.popleft()]
        size = len(taken[0].entries)
        while self._queue and size + len(self._queue[0].entries) <= MAX_ENTRIES_PER_WRITE:
            batch = self._queue.popleft()
            size += len(batch.entries)
            taken.append(batch)
        return taken

    async def _write_until_done(
        self, entries: list[HistoryEntry], batches: list[_Batch]
    ) -> dict[int, HistoryRejected]:
        """Write, retrying while the database is unavailable; returns refused entries' jobs
        (by id) with the reason."""
        attempts = 0
        while True:
            try:
                await self._store.write(entries)
            except HistoryRejected as refused:
                log.warning("history_batch_refused", entries=len(entries), error=str(refused))
                return await self._write_one_by_one(batches)
            except HistoryUnavailable as exc:
                attempts += 1
                await self._failed(exc, attempts, len(entries))
                continue
            except Exception as exc:  # a bug must not lose the batch: keep trying, loudly
                log.exception("history_write_crashed")
                attempts += 1
                await self._failed(HistoryUnavailable(repr(exc)), attempts, len(entries))
                continue
            self._succeeded(entries)
            return {}

    async def _write_one_by_one(self, batches: list[_Batch]) -> dict[int, HistoryRejected]:
        rejected: dict[int, HistoryRejected] = {}
        for batch in batches:
            for job, entry in batch.entries:
                try:
                    await self._write_until_done_or_refused(entry)
                except HistoryRejected as refused:
                    rejected[id(job)] = refused
        return rejected

    async def _write_until_done_or_refused(self, entry: HistoryEntry) -> None:
        attempts = 0
        while True:
            try:
                await self._store.write([entry])
            except HistoryUnavailable as exc:
                attempts += 1
                await self._failed(exc, attempts, 1)
                continue
            self._succeeded([entry])
            return

    async def _failed(self, error: HistoryUnavailable, attempts: int, entries: int) -> None:
        self._metrics.history_write_failures.inc()
        if self._failing_since is None:
            self._failing_since = self._clock.monotonic()
        self.last_error = str(error)
        delay = self._retry.delay_s(attempts, error, self._rng)
        log.error(
            "history_write_failed",
            error=str(error),
            entries=entries,
            waiting=self._waiting,
            attempt=attempts,
            retry_in_s=round(delay, 3),
        )
        await self._clock.sleep(delay)

    def _succeeded(self, entries: list[HistoryEntry]) -> None:
        if self._failing_since is not None:
            log.info(
                "history_writes_resumed",
                failed_for_s=round(self._clock.monotonic() - self._failing_since, 1),
            )
        self._failing_since = None
        self.last_error = None
        self._metrics.history_written.inc(len(entries))
        if self._on_written is not None:
            self._on_written({entry.user_id for entry in entries})

    def _hand_on(self, batches: list[_Batch], rejected: dict[int, HistoryRejected]) -> None:
        handed = 0
        for batch in batches:
            written = {id(job) for job, _ in batch.entries}
            for job in batch.jobs:
                handed += 1
                refused = rejected.get(id(job))
                if refused is None:
                    # Its item holds the personal text: only now may it go out shared.
                    job.in_history = id(job) in written
                    self._release(job)
                else:
                    self._reject(job, refused)
        self._count(-handed)

    def _count(self, change: int) -> None:
        self._waiting += change
        self._metrics.history_waiting.set(self._waiting)
