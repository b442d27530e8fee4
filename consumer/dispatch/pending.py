"""The pending set: every job the dispatcher holds, indexed for the scheduler.

A job enters as an ``Entry`` and is, at any time, in one state:

    READY      may go out in the next request
    DELAYED    waits for its retry time (``not_before``), then becomes READY
    IN_FLIGHT  part of a request under way (counted in ``size``: it holds memory
               and its offset is not yet committable)
    DONE       has its outcome

Two rules keep what the customer sees in order and every offset accounted for:
a waiting job whose collapse key has a request in flight is held back (DELAYED
with no retry time) until that request settles, so two statuses of one order
never race each other to the provider; and a job in flight when its partition
was revoked is an *orphan*: if it fails it is forgotten (the partition's new
owner sends it), and if this process gets the partition back and re-reads the
record, the record is dropped and the orphan is adopted again instead.

Lookups are heaps with lazy deletion: an item is valid while its entry is still
in the state (and generation) it was pushed for; stale items are skipped when
they surface and the heaps are rebuilt when stale items outnumber live ones.
Every outcome decided here is appended to ``finished`` for the owner to report.
"""

from __future__ import annotations

import datetime as dt
import enum
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from consumer.errors import ConsumerError
from consumer.push import Outcome, PushClass, PushJob


class State(enum.Enum):
    READY = "ready"
    DELAYED = "delayed"
    IN_FLIGHT = "in_flight"
    DONE = "done"


_WAITING = (State.READY, State.DELAYED)
V = TypeVar("V")


@dataclass(eq=False, slots=True)
class Entry:
    job: PushJob
    seq: int  # arrival order; kept across retries so a retried job keeps its age
    group: Hashable
    recipients: tuple[str, ...]
    arrived: float
    state: State = State.READY
    gen: int = 0
    not_before: float = 0.0
    orphaned: bool = False

    @property
    def push_class(self) -> PushClass:
        return self.job.push.push_class


@dataclass(frozen=True, slots=True)
class Finished:
    job: PushJob
    outcome: Outcome
    reason: str
    error: ConsumerError | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """What makes one push for a collapse key newer than another."""

    version: int | None
    occurred_at: dt.datetime

    @classmethod
    def of(cls, job: PushJob) -> Mark:
        return cls(job.version, job.occurred_at)

    def older_than(self, other: Mark) -> bool:
        if self.version is not None and other.version is not None:
            return self.version < other.version
        return self.occurred_at < other.occurred_at

    def same_version(self, other: Mark) -> bool:
        return self.version is not None and self.version == other.version


class PendingSet:
    def __init__(self, *, dedupe_memory: int, collapse_memory: int) -> None:
        self._seq = itertools.count()
        self._waiting = 0
        self._in_flight = 0
        self._ready: dict[PushClass, list[tuple[int, int, Entry]]] = {c: [] for c in PushClass}
        self._aging: dict[PushClass, list[tuple[int, int, Entry]]] = {c: [] for c in PushClass}
        self._delayed: list[tuple[float, int, int, Entry]] = []
        self._expiry: list[tuple[dt.datetime, int, int, Entry]] = []
        self._groups: dict[Hashable, dict[int, Entry]] = {}
        self._collapse: dict[str, Entry] = {}
        self._held: dict[str, Entry] = {}  # event id -> its entry, waiting or in flight
        self._flying: dict[str, int] = {}  # collapse key -> requests in flight carrying it
        self._blocked: dict[str, Entry] = {}  # collapse key -> waiting entry held back
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._sent: OrderedDict[str, Mark] = OrderedDict()
        self._dedupe_memory = dedupe_memory
        self._collapse_memory = collapse_memory
        self.finished: list[Finished] = []

    @property
    def size(self) -> int:
        """Jobs without an outcome: waiting plus in flight."""
        return self._waiting + self._in_flight

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def finish(
        self, job: PushJob, outcome: Outcome, reason: str, error: ConsumerError | None = None
    ) -> None:
        if outcome is Outcome.DEAD_LETTERED:
            # Replayed from the dead-letter topic after a fix, it must go out, not be
            # skipped as a duplicate of itself.
            self._seen.pop(job.event_id, None)
        self.finished.append(Finished(job, outcome, reason, error))

    def add(
        self,
        job: PushJob,
        group: Hashable,
        recipients: tuple[str, ...],
        now_mono: float,
        now_wall: dt.datetime,
    ) -> None:
        if job.event_id in self._seen:
            held = self._held.get(job.event_id)
            if held is not None and held.job.origin == job.origin:
                held.orphaned = False  # the same record read again: it is ours once more
                return
            self.finish(job, Outcome.SKIPPED, "duplicate")
            return
        _remember(self._seen, job.event_id, None, self._dedupe_memory)
        if job.expires_at <= now_wall:
            self.finish(job, Outcome.EXPIRED, "ttl_elapsed")
            return
        entry = Entry(job, next(self._seq), group, recipients, arrived=now_mono)
        if self._wins_collapse(entry, returning=False):
            self._held[job.event_id] = entry
            self._enter(entry, now_mono)
        self._compact()

    def requeue(
        self, entry: Entry, not_before: float, now_mono: float, now_wall: dt.datetime
    ) -> None:
        """Bring a failed in-flight job back, to go again from ``not_before``."""
        self.release(entry)
        if entry.orphaned:  # its partition has a new owner, which will send it
            self._seen.pop(entry.job.event_id, None)
            return
        if entry.job.expires_at <= now_wall:
            self.finish(entry.job, Outcome.EXPIRED, "ttl_elapsed")
            return
        if self._wins_collapse(entry, returning=True):
            self._held[entry.job.event_id] = entry
            entry.gen += 1
            entry.not_before = not_before
            self._enter(entry, now_mono)
        self._compact()

    def release(self, entry: Entry) -> None:
        """An in-flight job is settled: the caller reports its outcome (or requeues it)."""
        self._in_flight -= 1
        entry.state = State.DONE
        self._held.pop(entry.job.event_id, None)
        key = entry.job.push.collapse_key
        if key is not None and key in self._flying:
            self._flying[key] -= 1
            if not self._flying[key]:
                del self._flying[key]
                self._unblock(key)

    def take(self, entries: Iterable[Entry]) -> None:
        """The entries go out now: in flight, and their versions count as shown."""
        for entry in entries:
            self._leave(entry, State.IN_FLIGHT)
            self._in_flight += 1
            entry.job.attempts += 1
            key = entry.job.push.collapse_key
            if key is not None:
                self._flying[key] = self._flying.get(key, 0) + 1
                mark, shown = Mark.of(entry.job), self._sent.get(key)
                if shown is None or not mark.older_than(shown):
                    _remember(self._sent, key, mark, self._collapse_memory)
        self._compact()

    def _wins_collapse(self, entry: Entry, *, returning: bool) -> bool:
        key = entry.job.push.collapse_key
        if key is None:
            return True
        mark, shown = Mark.of(entry.job), self._sent.get(key)
        # A returning job's own version is already in ``_sent``: only a newer one beats it.
        if shown is not None and (
            mark.older_than(shown) or (not returning and mark.same_version(shown))
        ):
            self.finish(entry.job, Outcome.SUPERSEDED, "older_than_sent")
            return False
        current = self._collapse.get(key)
        if current is not None:
            if mark.older_than(Mark.of(current.job)):
                self.finish(entry.job, Outcome.SUPERSEDED, "newer_pending")
                return False
            self._leave(current, State.DONE)
            self.finish(current.job, Outcome.SUPERSEDED, "replaced_by_newer")
        self._collapse[key] = entry
        return True

    def _enter(self, entry: Entry, now_mono: float) -> None:
        self._waiting += 1
        item = (entry.seq, entry.gen, entry)
        heapq.heappush(self._aging[entry.push_class], item)
        heapq.heappush(self._expiry, (entry.job.expires_at, *item))
        key = entry.job.push.collapse_key
        if key is not None and key in self._flying:
            entry.state = State.DELAYED  # until the request carrying this key settles
            self._blocked[key] = entry
        elif entry.not_before > now_mono:
            entry.state = State.DELAYED
            heapq.heappush(self._delayed, (entry.not_before, *item))
        else:
            self._make_ready(entry)

    def _make_ready(self, entry: Entry) -> None:
        entry.state = State.READY
        heapq.heappush(self._ready[entry.push_class], (entry.seq, entry.gen, entry))
        self._groups.setdefault(entry.group, {})[entry.seq] = entry

    def _unblock(self, key: str) -> None:
        """The key has no request in flight now: its held-back entry may go when due."""
        entry = self._blocked.pop(key, None)
        if entry is not None and entry.state is State.DELAYED:
            heapq.heappush(self._delayed, (entry.not_before, entry.seq, entry.gen, entry))

    def _leave(self, entry: Entry, state: State) -> None:
        if entry.state in _WAITING and state is not State.IN_FLIGHT:
            self._held.pop(entry.job.event_id, None)
        if entry.state is State.READY:
            members = self._groups[entry.group]
            del members[entry.seq]
            if not members:
                del self._groups[entry.group]
        self._waiting -= 1
        key = entry.job.push.collapse_key
        if key is not None and self._collapse.get(key) is entry:
            del self._collapse[key]
        if key is not None and self._blocked.get(key) is entry:
            del self._blocked[key]
        entry.state = state

    # --- what the scheduler asks -------------------------------------------------

    def ready_top(self, push_class: PushClass) -> Entry | None:
        """The oldest READY entry of the class."""
        heap = self._ready[push_class]
        while heap and not _valid(heap[0][2], heap[0][1], (State.READY,)):
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def group_ready(self, group: Hashable) -> list[Entry]:
        """READY entries with this coalesce key, oldest first."""
        members = self._groups.get(group, {})
        return [members[seq] for seq in sorted(members)]

    def oldest_arrival(self, push_class: PushClass) -> float | None:
        heap = self._aging[push_class]
        while heap and not _valid(heap[0][2], heap[0][1], _WAITING):
            heapq.heappop(heap)
        return heap[0][2].arrived if heap else None

    def promote_due(self, now_mono: float) -> None:
        while self._delayed and self._delayed[0][0] <= now_mono:
            _, _, gen, entry = heapq.heappop(self._delayed)
            if _valid(entry, gen, (State.DELAYED,)):
                self._make_ready(entry)

    def expire(self, now_wall: dt.datetime) -> None:
        while self._expiry and self._expiry[0][0] <= now_wall:
            _, _, gen, entry = heapq.heappop(self._expiry)
            if _valid(entry, gen, _WAITING):
                self._leave(entry, State.DONE)
                self.finish(entry.job, Outcome.EXPIRED, "ttl_elapsed")
        self._compact()

    def next_retry_at(self) -> float | None:
        heap = self._delayed
        while heap and not _valid(heap[0][3], heap[0][2], (State.DELAYED,)):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def next_expiry(self) -> dt.datetime | None:
        heap = self._expiry
        while heap and not _valid(heap[0][3], heap[0][2], _WAITING):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def drop(self, partitions: set[tuple[str, int]]) -> int:
        """Forget waiting jobs of these partitions, with no outcome (and as never seen);
        mark their jobs in flight as orphans. Returns how many waiting jobs were dropped."""
        dropped = 0
        for entry in list(self._held.values()):
            origin = entry.job.origin
            if (origin.topic, origin.partition) not in partitions:
                continue
            if entry.state is State.IN_FLIGHT:
                entry.orphaned = True
                continue
            self._leave(entry, State.DONE)
            self._seen.pop(entry.job.event_id, None)
            dropped += 1
        self._compact()
        return dropped

    def _compact(self) -> None:
        """Rebuild heaps whose stale items outnumber the live ones (bounds memory)."""
        limit = 2 * self._waiting + 64
        # Runs after every change: the common case (nothing to rebuild) must stay a few lookups.
        if len(self._expiry) <= limit and len(self._delayed) <= limit:
            sizes = [len(h) for h in self._ready.values()] + [len(h) for h in self._aging.values()]
            if max(sizes) <= limit:
                return
        for push_class in PushClass:
            for heaps, states in ((self._ready, (State.READY,)), (self._aging, _WAITING)):
                if len(heaps[push_class]) > limit:
                    heaps[push_class] = [i for i in heaps[push_class] if _valid(i[2], i[1], states)]
                    heapq.heapify(heaps[push_class])
        if len(self._expiry) > limit:
            self._expiry = [i for i in self._expiry if _valid(i[3], i[2], _WAITING)]
            heapq.heapify(self._expiry)
        if len(self._delayed) > limit:
            self._delayed = [i for i in self._delayed if _valid(i[3], i[2], (State.DELAYED,))]
            heapq.heapify(self._delayed)


def _remember(memory: OrderedDict[str, V], key: str, value: V, bound: int) -> None:
    """Insert as most recent, forgetting the least recent beyond ``bound``."""
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > bound:
        memory.popitem(last=False)


def _valid(entry: Entry, gen: int, states: tuple[State, ...]) -> bool:
    return entry.gen == gen and entry.state in states
