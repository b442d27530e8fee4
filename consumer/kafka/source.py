"""The Kafka source: a rebalance-safe consumer-group member over aiokafka.

What it guarantees (DESIGN "Delivery semantics" and "Backpressure"):

- Manual commits only, of explicit ``{tp: OffsetAndMetadata}`` maps for partitions
  still assigned: the low watermark plus the finished offsets above it, encoded in
  the metadata by ``consumer.kafka.offsets``. A commit refused because of a rebalance is
  expected (the partition's new owner re-reads what was committed), not fatal.
- On assignment the committed offset *and metadata* are read back, so records
  already finished before a restart or rebalance are dropped, never sent again.
  aiokafka 0.14 has no public call returning the metadata (``committed()`` keeps
  only the offset); the group coordinator's ``fetch_committed_offsets`` returns
  ``OffsetAndMetadata`` and is what ``committed()`` itself uses, so we call it.
  New partitions are paused synchronously at the start of the listener, before
  any await, so no record is handed out before its skip set is known.
- Backpressure: the service sets a desired paused state (``pause_all`` /
  ``resume_all``); partitions whose metadata outgrew the broker limit are paused
  too. The union is applied to the current assignment after every getmany,
  commit and rebalance, because aiokafka forgets pauses on a rebalance. The
  consumer keeps calling ``getmany`` while paused, so it stays in the group.
- One commit at a time. A commit that times out is still under way inside
  aiokafka (which shields it from cancellation); it is never cancelled, and the
  next commit waits for it, so an older position can never land after a newer
  one, and its late answer is still recorded.
- ``getmany`` keeps to its timeout: aiokafka's waits for a rebalance to finish
  with no limit, which would hide ``stop`` (and the probes) from the loop while
  the group coordinator is gone.
- An offset reset below what this member handed out (the log now ends below the
  committed offset: an unclean leader election, a recreated topic whose commit
  survived) restarts the partition where Kafka put it, once the records of the
  old log still pending here have their outcomes; until then it is paused.
  Without this those records would be taken as finished and silently skipped.
- ``status`` (``consumer.kafka.status``) keeps what the source saw of the broker:
  failing commits, partitions without fetch answers, a rebalance that does not
  finish, topics missing from the cluster (logged once each as they go missing).
- Shutdown: a final commit, then ``consumer.stop()``, all within one deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from consumer.clock import Clock
from consumer.kafka.clients import client_kwargs
from consumer.kafka.offsets import OffsetBook
from consumer.kafka.status import KafkaStatus
from consumer.logs import flush_lines, get_logger
from consumer.metrics import Metrics
from consumer.settings import KafkaSettings

log = get_logger(__name__)

# The backlog lives in Kafka: at most one fetch per partition is buffered, and one
# getmany hands out a bounded batch so the service can pause at its high-water mark.
MAX_PARTITION_FETCH_BYTES = 1024 * 1024
FETCH_MAX_BYTES = 16 * 1024 * 1024
MAX_POLL_RECORDS = 500
# How long getmany may overrun its timeout before we stop waiting for aiokafka.
GETMANY_SLACK_S = 0.5

RevokedCallback = Callable[[set[TopicPartition]], None]
RevokingHook = Callable[[set[TopicPartition]], Awaitable[None]]


def consumer_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    return {
        **client_kwargs(settings),
        "client_id": settings.group_instance_id or settings.group_id,
        "group_id": settings.group_id,
        "group_instance_id": settings.group_instance_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": min(3000, settings.session_timeout_ms // 3),
        "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
        "fetch_max_bytes": FETCH_MAX_BYTES,
        "max_poll_records": MAX_POLL_RECORDS,
        "metadata_max_age_ms": settings.metadata_max_age_ms,
    }


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._source._on_assigned(set(assigned))


class KafkaSource:
    """``async with KafkaSource(...) as source``: fetch, mark done, commit, pause."""

    def __init__(
        self,
        settings: KafkaSettings,
        metrics: Metrics,
        clock: Clock,
        *,
        on_revoked: RevokedCallback | None = None,
        on_revoking: RevokingHook | None = None,
        commit_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        consumer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._on_revoked_callback = on_revoked
        self._on_revoking = on_revoking
        self._commit_timeout_s = commit_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._options = dict(consumer_options or {})
        self._book: OffsetBook[TopicPartition] = OffsetBook(settings.commit_metadata_max_bytes)
        self._consumer: Any = None
        self._commit_lock = asyncio.Lock()
        self._desired_paused = False
        self._applied_over_limit: set[TopicPartition] = set()
        self._joined = False
        self._stopped = False
        self._commit_task: asyncio.Future[None] | None = None
        self._rewound: dict[TopicPartition, int] = {}  # restart offset after a reset
        self.status = KafkaStatus(clock, settings.failing_after_s)
        self.last_progress = clock.monotonic()

    async def __aenter__(self) -> KafkaSource:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**{**consumer_kwargs(self._settings), **self._options})
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        # Subscribing after start lets start() return before the first join (readiness
        # reports it), instead of blocking until the first assignment.
        consumer.subscribe(topics=list(self._settings.topics), listener=_Listener(self))
        self._consumer = consumer
        log.info(
            "kafka_source_started", topics=self._settings.topics, group=self._settings.group_id
        )

    # ---- state for the service and probes

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        if self._consumer is None or self._stopped:
            return frozenset()
        return frozenset(self._consumer.assignment())

    @property
    def paused(self) -> frozenset[TopicPartition]:
        if self._consumer is None or self._stopped:
            return frozenset()
        return frozenset(self._consumer.paused())

    @property
    def ready(self) -> bool:
        """Joined the group at least once (an assignment may be empty) and not stopped."""
        return self._joined and not self._stopped

    @property
    def book(self) -> OffsetBook[TopicPartition]:
        return self._book

    # ---- the loop's calls

    async def getmany(
        self, timeout_ms: int = 1000, *, max_records: int | None = None
    ) -> list[ConsumerRecord]:
        """Records to process, minus those finished before a restart or rebalance."""
        consumer = self._running()
        self._finish_rewinds()
        try:
            batches = await asyncio.wait_for(
                consumer.getmany(timeout_ms=timeout_ms, max_records=max_records),
                timeout_ms / 1000 + GETMANY_SLACK_S,
            )
        except TimeoutError:  # aiokafka waits for the rebalance to finish, without a limit
            batches = {}
            self.status.getmany_ended(waited_for_rebalance=True)
        else:
            self.status.getmany_ended(waited_for_rebalance=False)
        self.last_progress = self._clock.monotonic()
        records: list[ConsumerRecord] = []
        skipped = 0
        for tp, batch in batches.items():
            offsets = self._book.get(tp)
            if offsets is None or tp in self._rewound:
                self._hand_back(tp, batch)
                continue
            if batch and offsets.next_fetch is not None and batch[0].offset < offsets.next_fetch:
                self._rewind(tp, batch[0].offset)
                continue
            for record in batch:
                if offsets.fetched(record.offset):
                    records.append(record)
                else:
                    skipped += 1
        if skipped:
            log.info("records_skipped_already_finished", count=skipped)
        self._watch(consumer, delivered=batches.keys())
        if self._book.over_limit() != self._applied_over_limit:
            self._apply_pause()
        return records

    def done(self, topic: str, partition: int, offset: int) -> None:
        """The event at this offset has its outcome; its offset may now be committed."""
        if not self._book.done(TopicPartition(topic, partition), offset):
            log.debug("done_for_unassigned_partition", topic=topic, partition=partition)

    async def commit(self, timeout_s: float | None = None, *, probe: bool = False) -> bool:
        """Commit what is finished, for partitions still assigned, waiting at most
        ``timeout_s`` (default: the commit timeout).

        True when nothing finished is left uncommitted; never raises on a rebalance
        or a broker that does not answer (``status`` keeps the trouble). With
        ``probe``, positions already committed are committed again: True then also
        says the group coordinator answers now.
        """
        if self._consumer is None:
            return True
        timeout = self._commit_timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if timeout <= 0:  # no time to take the lock: no commit is started
            return False
        try:  # the commit loop may hold the lock while it waits for a hung commit
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
            # that comes as the lock is handed over, and the cancelled loop goes on.
            async with asyncio.timeout(timeout):
                await self._commit_lock.acquire()
        except TimeoutError:
            return False
        try:
            left = max(0.0, deadline - loop.time())
            committed = await self._commit_locked(None, left, probe=probe)
        finally:
            self._commit_lock.release()
        if not self._stopped:
            self._apply_pause()
            self._update_lag()
        return committed

    def pause_all(self) -> None:
        self._desired_paused = True
        self._apply_pause()

    def resume_all(self) -> None:
        self._desired_paused = False
        self._apply_pause()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Final commit, then leave the group, within ``timeout_s`` (default: the stop
        timeout) whatever the broker does."""
        if self._consumer is None or self._stopped:
            return
        budget = self._stop_timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        if not await self.commit(min(self._commit_timeout_s, budget / 2)):
            log.warning("final_commit_not_made", timeout_s=min(self._commit_timeout_s, budget / 2))
        self._stopped = True
        try:  # a moment at least, so that the consumer starts closing (and says it did)
            await asyncio.wait_for(self._consumer.stop(), max(0.1, deadline - loop.time()))
        except TimeoutError:
            log.warning(
                "kafka_consumer_stop_timed_out",
                timeout_s=budget,
                consequence="the group hands its partitions on after the session timeout",
            )
        # A commit still unanswered is left to end with the consumer: cancelling it
        # would orphan aiokafka's shielded request and its error.
        self._metrics.paused_partitions.set(0)
        for tp in self._book.partitions:
            self._forget_lag(tp)
        log.info("kafka_source_stopped")

    # ---- internals

    def _running(self) -> Any:
        if self._consumer is None or self._stopped:
            raise RuntimeError("KafkaSource is not started")
        return self._consumer

    def _hand_back(self, tp: TopicPartition, batch: list[ConsumerRecord]) -> None:
        # Records of a partition whose book is not built yet (or is being restarted
        # after a reset): seek back so they come again.
        if batch and tp in self._consumer.assignment():
            self._consumer.seek(tp, self._rewound.get(tp, batch[0].offset))
            log.debug("records_handed_back", topic=tp.topic, partition=tp.partition)

    def _rewind(self, tp: TopicPartition, offset: int) -> None:
        offsets = self._book.get(tp)
        log.warning(
            "partition_offset_reset",
            topic=tp.topic,
            partition=tp.partition,
            restart_at=offset,
            expected=offsets.next_fetch if offsets else None,
            watermark=offsets.low_watermark if offsets else None,
            consequence="the log ends below what was read: its records are read again "
            "from here, once those pending from before have their outcomes",
        )
        self._rewound[tp] = offset
        self._consumer.seek(tp, offset)
        self._apply_pause()

    def _finish_rewinds(self) -> None:
        """Restart a reset partition once nothing read from its old log is pending."""
        ready = [tp for tp in self._rewound if not self._old_log_pending(tp)]
        for tp in ready:
            offset = self._rewound.pop(tp)
            if tp in self._book and tp in self._consumer.assignment():
                self._book.restart(tp, offset)
                self._consumer.seek(tp, offset)
                log.info("partition_restarted", topic=tp.topic, partition=tp.partition, at=offset)
        if ready:
            self._apply_pause()

    def _old_log_pending(self, tp: TopicPartition) -> bool:
        offsets = self._book.get(tp)
        return offsets is not None and bool(offsets.pending)

    def _watch(self, consumer: Any, delivered: Any) -> None:
        """Tell ``status`` what the fetches and the topics look like now."""
        try:
            fetching = set(consumer.assignment()) - set(consumer.paused())
            stamps = {tp: consumer.last_poll_timestamp(tp) for tp in fetching}
        except IllegalStateError:  # the assignment changed under us: next time
            return
        self.status.fetch_answers(stamps, delivered)
        if self._joined:
            self._note_missing_topics(consumer)

    def _note_missing_topics(self, consumer: Any) -> None:
        missing = frozenset(
            t for t in self._settings.topics if not consumer.partitions_for_topic(t)
        )
        before = self.status.missing_topics
        for topic in sorted(missing - before):
            log.warning(
                "kafka_topic_missing",
                topic=topic,
                consequence="nothing is read from it until it is created; "
                f"it is picked up within {self._settings.metadata_max_age_ms / 1000:g} s of that",
            )
        for topic in sorted(before - missing):
            log.info("kafka_topic_found", topic=topic)
        self.status.missing_topics = missing

    async def _commit_locked(
        self, only: set[TopicPartition] | None, timeout_s: float, *, probe: bool = False
    ) -> bool:
        flush_lines()  # the outcome lines of what is committed are out first
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._commit_task is not None and not self._commit_task.done():
            # Still under way in aiokafka: a newer commit must not overtake it.
            await asyncio.wait({self._commit_task}, timeout=timeout_s)
            if not self._commit_task.done():
                return False
        assigned = self._consumer.assignment()
        entries = {
            tp: entry
            for tp, entry in self._book.commit_map(only, unchanged_too=probe).items()
            if tp in assigned
        }
        if not entries:
            return True
        offsets = {tp: OffsetAndMetadata(offset, meta) for tp, (offset, meta) in entries.items()}
        task = asyncio.ensure_future(self._consumer.commit(offsets))
        self._commit_task = task
        self.status.commit_started()
        task.add_done_callback(functools.partial(self._commit_answered, entries))
        await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
        if not task.done():
            log.warning(
                "commit_timed_out",
                timeout_s=timeout_s,
                consequence="still under way; the next commit waits for it",
            )
            self.status.commit_timed_out(timeout_s)
            return False
        return not task.cancelled() and task.exception() is None

    def _commit_answered(
        self, entries: dict[TopicPartition, tuple[int, str]], task: asyncio.Future[None]
    ) -> None:
        """Record a commit's answer, however late it comes."""
        if task.cancelled():
            self.status.commit_ended("cancelled")
            return
        exc = task.exception()
        if exc is None:
            for tp, (offset, meta) in entries.items():
                self._book.committed(tp, offset, meta)
            self.status.commit_ended()
            log.debug(
                "offsets_committed",
                offsets={f"{t.topic}/{t.partition}": o for t, (o, _) in entries.items()},
            )
        elif isinstance(exc, CommitFailedError | IllegalStateError):
            # The group rebalanced: the partitions' new owner reads what was committed.
            self.status.commit_ended()
            log.info("commit_skipped_by_rebalance", error=str(exc), partitions=len(entries))
        else:
            self.status.commit_ended(f"{type(exc).__name__}: {exc}")
            log.warning("commit_failed", error_class=type(exc).__name__, error=str(exc))

    def _apply_pause(self) -> None:
        if self._consumer is None or self._stopped:
            return
        assigned = set(self._consumer.assignment())
        over_limit = self._book.over_limit()
        want = set(assigned) if self._desired_paused else set()
        want |= over_limit & assigned
        want |= assigned - self._book.partitions  # book still being built
        want |= assigned & set(self._rewound)  # old log's records still pending
        current = set(self._consumer.paused())
        try:
            if want - current:
                self._consumer.pause(*(want - current))
            if current - want:
                self._consumer.resume(*(current - want))
        except IllegalStateError as exc:  # the assignment changed under us
            log.debug("pause_not_applied", error=str(exc))
            return
        if over_limit != self._applied_over_limit:
            for tp in over_limit - self._applied_over_limit:
                log.warning(
                    "partition_paused_metadata_limit",
                    topic=tp.topic,
                    partition=tp.partition,
                    limit_bytes=self._book.metadata_max_bytes,
                )
            self._applied_over_limit = over_limit
        self._metrics.paused_partitions.set(len(want))

    def _update_lag(self) -> None:
        for tp in self._book.partitions & set(self._consumer.assignment()):
            offsets = self._book.get(tp)
            highwater = self._consumer.highwater(tp)
            if offsets is None or highwater is None or offsets.next_fetch is None:
                continue
            lag = max(0, highwater - offsets.next_fetch)
            self._metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)

    def _forget_lag(self, tp: TopicPartition) -> None:
        with contextlib.suppress(KeyError):
            self._metrics.lag.remove(tp.topic, str(tp.partition))

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked and self._on_revoking is not None:
            try:  # work in flight for these partitions ends first, so the commit has it
                await self._on_revoking(set(revoked))
            except Exception:
                log.exception("on_revoking_hook_failed")
        try:
            await asyncio.wait_for(self._commit_revoked(revoked), self._commit_timeout_s)
        except TimeoutError:
            log.warning("revoke_commit_timed_out", partitions=len(revoked))
        for tp in revoked:
            self._book.revoke(tp)
            self._rewound.pop(tp, None)
            self._forget_lag(tp)
        self._applied_over_limit &= self._book.over_limit()
        if revoked:
            log.info("partitions_revoked", partitions=_names(revoked))
        if revoked and self._on_revoked_callback is not None:
            try:
                self._on_revoked_callback(set(revoked))
            except Exception:
                log.exception("on_revoked_callback_failed")

    async def _commit_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._commit_lock:
            await self._commit_locked(revoked, self._commit_timeout_s)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            # Synchronously, before any await: nothing is handed out before its skip set is known.
            self._consumer.pause(*assigned)
        committed = await self._read_committed(assigned)
        for tp in self._book.partitions - assigned:
            self._book.revoke(tp)
        self._rewound = {tp: at for tp, at in self._rewound.items() if tp in assigned}
        for tp in assigned:
            offset, metadata = committed.get(tp, (None, ""))
            self._book.assign(tp, offset, metadata)
            if offset is not None:
                # The fetcher would read the same commit; seeking keeps it and the book in step.
                self._consumer.seek(tp, offset)
        self._joined = True
        self._apply_pause()
        log.info(
            "partitions_assigned",
            partitions=_names(assigned),
            paused=len(self.paused),
        )

    async def _read_committed(
        self, tps: set[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, str]]:
        if not tps:
            return {}
        coordinator = getattr(self._consumer, "_coordinator", None)
        try:
            if coordinator is None:
                raise KafkaError("aiokafka has no group coordinator to read metadata from")
            found = await asyncio.wait_for(
                coordinator.fetch_committed_offsets(list(tps)), self._commit_timeout_s
            )
        except (KafkaError, TimeoutError) as exc:
            log.warning(
                "committed_offsets_unreadable",
                error=str(exc) or type(exc).__name__,
                consequence="offsets finished above the watermark may be sent again",
            )
            return {}
        return {tp: (meta.offset, meta.metadata) for tp, meta in found.items() if meta.offset >= 0}


def _names(tps: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in tps)
