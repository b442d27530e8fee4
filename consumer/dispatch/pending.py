"""The pending set: every job the dispatcher holds, indexed for the scheduler.

A job enters as an ``Entry`` and is, at any time, in one state:

    READY      may go out in the next request
    DELAYED    waits for its retry time (``not_before``), then becomes READY
    IN_FLIGHT  part of a request under way, or of one the provider accepted and
               has yet to confirm (counted in ``size``: it holds memory and its
               offset is not yet committable)
    DONE       has its outcome

What the customer sees stays in order through two separate records per collapse
key (an order):

- the *in-flight claim*: while a request carries a push of the key, a newer
  waiting push of it is held back (DELAYED with no retry time) until that request
  settles, so two statuses of one order never race each other on the wire. The
  claim ends with the request, however it ends; a request the provider confirms
  later (``consumer.providers.base.Confirmation``) settles with its verdict, so
  the newer status waits until the older one is final;
- the *shown mark*: the newest status the provider accepted for good. Only that
  sets it: a request that failed, was dead-lettered (refused at once or after
  its acceptance), or whose partition was given up leaves nothing behind, so the
  same status read again (a replay, a rebalance) goes out. A push that may have
  been shown (a lost answer, ``OutcomeUnknown``; a verdict the provider never
  gave) marks the status *maybe shown*, which refuses strictly older statuses but
  not itself. An acceptance awaiting its verdict marks nothing: the claim already
  holds the key's other statuses back until the verdict.

Per-partition state belongs to one assignment of the partition (its *epoch*, as
Confluent's parallel consumer tags work). When the partition is given up, its
waiting jobs are forgotten and its epoch ends; a request still in flight (or
awaiting its confirmation) then carries jobs of an ended epoch, whose results
are not recorded: the partition's next owner reads those records again. If that
owner is this process and the request is still in flight, the record read again
adopts the job into the new epoch instead. Before the partition is given up it
can be *closed*: nothing of it is started or retried any more, and the
dispatcher waits for its requests in flight (and their confirmations) so their
outcomes are recorded (and committed) first.

A waiting job belongs to the coalesce group of the text it would go out with:
its personal text's, or its rule's shared text's (``regroup``, decided by the
reach planner). Quiet hours hold a job (``hold``): DELAYED until its
recipient's window ends, like a retry, so expiry and supersession go on while
it waits.

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
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from consumer.errors import ConsumerError
from consumer.push import Outcome, PushClass, PushJob, Variant

Partition = tuple[str, int]  # (topic, partition)


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
    epoch: int = 0  # the assignment of its partition it belongs to
    last_error: ConsumerError | None = None  # why its latest attempt failed
    personal_group: Hashable = None  # its group with its personal text (``group`` at first)
    shared_group: Hashable = None  # with its rule's shared text, once it was shared
    held_until: dt.datetime | None = None  # quiet hours hold it until then (wall clock)
    received_at: dt.datetime | None = None  # when it came (wall clock; ``arrived`` is monotonic)

    def __post_init__(self) -> None:
        self.personal_group = self.group

    @property
    def partition(self) -> Partition:
        return (self.job.origin.topic, self.job.origin.partition)

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


@dataclass(frozen=True, slots=True)
class Shown:
    """The newest status of a collapse key that reached the provider."""

    mark: Mark
    certain: bool  # accepted; False: its answer was lost, so it may have been shown

    def refuses(self, mark: Mark) -> bool:
        """A status older than this one, or this one again once it surely was shown."""
        return mark.older_than(self.mark) or (self.certain and mark.same_version(self.mark))


class PendingSet:
    def __init__(self, *, dedupe_memory: int, collapse_memory: int) -> None:
        self._seq = itertools.count()
        self._waiting = 0
        self._shareable = 0
        self._shared = 0
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
        self._shown: OrderedDict[str, Shown] = OrderedDict()
        self._epochs: dict[Partition, int] = {}
        self._closing: set[Partition] = set()
        self._dedupe_memory = dedupe_memory
        self._collapse_memory = collapse_memory
        self.finished: list[Finished] = []

    @property
    def size(self) -> int:
        """Jobs without an outcome: waiting plus in flight."""
        return self._waiting + self._in_flight

    @property
    def waiting(self) -> int:
        """Jobs waiting: READY or DELAYED."""
        return self._waiting

    @property
    def shareable_waiting(self) -> int:
        """Waiting jobs that may go out as their shared text."""
        return self._shareable

    @property
    def shared_waiting(self) -> int:
        """Waiting jobs going out as their shared text."""
        return self._shared

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
        *,
        held_until: tuple[float, dt.datetime] | None = None,
    ) -> Entry | None:
        """Take a job; returns its entry if it waits (None: it ended or is not ours).
        ``held_until``: its quiet hours hold it until then (monotonic, wall)."""
        partition = (job.origin.topic, job.origin.partition)
        if partition in self._closing:
            return None  # being given up: its next owner reads the record (no outcome here)
        if job.event_id in self._seen:
            held = self._held.get(job.event_id)
            if held is not None and held.job.origin == job.origin:
                held.epoch = self._epoch(partition)  # the same record read again: ours once more
                return None
            self.finish(job, Outcome.SKIPPED, "duplicate")
            return None
        _remember(self._seen, job.event_id, None, self._dedupe_memory)
        if job.expires_at <= now_wall:
            self.finish(job, Outcome.EXPIRED, "ttl_elapsed")
            return None
        entry = Entry(
            job, next(self._seq), group, recipients, arrived=now_mono, epoch=self._epoch(partition)
        )
        entry.received_at = now_wall
        if held_until is not None:
            entry.not_before, entry.held_until = held_until
        if not self._wins_collapse(entry):
            return None
        self._held[job.event_id] = entry
        self._enter(entry, now_mono)
        self._compact()
        return entry

    # --- a request's results, one call per job it carried ----------------------------

    def accepted(self, entry: Entry, *, confirmed: bool = True) -> None:
        """The provider took the push: it is shown, and ``sent`` if its epoch still runs.
        Not ``confirmed``: the provider accepted it but never said how it ended, so it
        is maybe shown, and ``sent`` with the reason ``unconfirmed``."""
        self._mark_shown(entry.job, certain=confirmed)  # first: releasing judges what waited
        self._release(entry)
        if self._current(entry):
            self.finish(entry.job, Outcome.SENT, "sent" if confirmed else "unconfirmed")
        # else: its partition was given up; the record read again finds it shown

    def refused(self, entry: Entry, reason: str, error: ConsumerError) -> None:
        """The provider refused the push for good: dead-lettered if its epoch still runs."""
        self._release(entry)
        if self._current(entry):
            self.finish(entry.job, Outcome.DEAD_LETTERED, reason, error)
        else:
            self._seen.pop(entry.job.event_id, None)  # the partition's next owner decides

    def maybe_shown(self, entry: Entry) -> None:
        """The request's answer was lost: the provider may have shown the push."""
        self._mark_shown(entry.job, certain=False)

    def retry(
        self,
        entry: Entry,
        not_before: float,
        error: ConsumerError,
        now_mono: float,
        now_wall: dt.datetime,
    ) -> bool:
        """The push did not go out: wait until ``not_before`` and go again, unless its
        time-to-live is over or its partition is being given up. True if it waits."""
        self._release(entry)
        entry.last_error = error
        if not self._current(entry) or entry.partition in self._closing:
            self._seen.pop(entry.job.event_id, None)  # the partition's next owner sends it
            return False
        if entry.job.expires_at <= now_wall:
            self.finish(entry.job, Outcome.EXPIRED, "ttl_elapsed", entry.last_error)
            return False
        if not self._wins_collapse(entry):
            return False
        self._held[entry.job.event_id] = entry
        entry.gen += 1
        entry.not_before = not_before
        self._enter(entry, now_mono)
        self._compact()
        return True

    def _release(self, entry: Entry) -> None:
        """The job's request is settled: end its in-flight claim on the collapse key."""
        self._in_flight -= 1
        entry.state = State.DONE
        self._held.pop(entry.job.event_id, None)
        key = entry.job.push.collapse_key
        if key is not None and key in self._flying:
            self._flying[key] -= 1
            if not self._flying[key]:
                del self._flying[key]
                self._unblock(key)

    def _mark_shown(self, job: PushJob, *, certain: bool) -> None:
        key = job.push.collapse_key
        if key is None:
            return
        mark, shown = Mark.of(job), self._shown.get(key)
        if shown is not None:
            if mark.older_than(shown.mark):
                return
            if not shown.mark.older_than(mark):  # the same status
                certain = certain or shown.certain
        _remember(self._shown, key, Shown(mark, certain), self._collapse_memory)

    # --- partitions ----------------------------------------------------------------

    def close(self, partitions: set[Partition]) -> int:
        """The partitions are about to be given up: forget their waiting jobs (no outcome,
        as never seen), take nothing of them from now on, retry none of their requests.
        Returns how many waiting jobs were forgotten."""
        self._closing |= partitions
        return self._forget_waiting(partitions)

    def drop(self, partitions: set[Partition]) -> int:
        """The partitions are given up: their epoch ends. Waiting jobs are forgotten;
        results of their requests still in flight will not be recorded. Returns how many
        waiting jobs were forgotten."""
        for partition in partitions:
            self._epochs[partition] = self._epoch(partition) + 1
        self._closing -= partitions
        return self._forget_waiting(partitions)

    def _forget_waiting(self, partitions: set[Partition]) -> int:
        forgotten = 0
        for entry in list(self._held.values()):
            if entry.state is not State.IN_FLIGHT and entry.partition in partitions:
                self._leave(entry, State.DONE)
                self._seen.pop(entry.job.event_id, None)
                forgotten += 1
        self._compact()
        return forgotten

    def _epoch(self, partition: Partition) -> int:
        return self._epochs.get(partition, 0)

    def _current(self, entry: Entry) -> bool:
        return entry.epoch == self._epoch(entry.partition)

    def take(self, entries: Iterable[Entry]) -> None:
        """The entries go out now: in flight, each with a claim on its collapse key."""
        for entry in entries:
            self._leave(entry, State.IN_FLIGHT)
            self._in_flight += 1
            entry.job.attempts += 1
            key = entry.job.push.collapse_key
            if key is not None:
                self._flying[key] = self._flying.get(key, 0) + 1
        self._compact()

    def _wins_collapse(self, entry: Entry) -> bool:
        key = entry.job.push.collapse_key
        if key is None:
            return True
        mark, shown = Mark.of(entry.job), self._shown.get(key)
        if shown is not None and shown.refuses(mark):
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
        self._shareable += entry.job.shareable
        self._shared += entry.job.variant is Variant.SHARED
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
        """The key has no request in flight now: its held-back entry may go when due,
        unless what that request carried was shown (or may have been) and is newer."""
        entry = self._blocked.pop(key, None)
        if entry is None or entry.state is not State.DELAYED:
            return
        shown = self._shown.get(key)
        if shown is not None and shown.refuses(Mark.of(entry.job)):
            self._leave(entry, State.DONE)
            self.finish(entry.job, Outcome.SUPERSEDED, "older_than_sent")
            return
        heapq.heappush(self._delayed, (entry.not_before, entry.seq, entry.gen, entry))

    def _leave(self, entry: Entry, state: State) -> None:
        if entry.state in _WAITING and state is not State.IN_FLIGHT:
            self._held.pop(entry.job.event_id, None)
        if entry.state is State.READY:
            self._ungroup(entry)
        self._waiting -= 1
        self._shareable -= entry.job.shareable
        self._shared -= entry.job.variant is Variant.SHARED
        key = entry.job.push.collapse_key
        if key is not None and self._collapse.get(key) is entry:
            del self._collapse[key]
        if key is not None and self._blocked.get(key) is entry:
            del self._blocked[key]
        entry.state = state

    # --- the texts a waiting job goes out with, and quiet hours -----------------------

    def switch(self, entry: Entry, variant: Variant) -> None:
        """The job goes out with this text from now on (``regroup`` it then)."""
        if entry.state in _WAITING:
            self._shared += (variant is Variant.SHARED) - (entry.job.variant is Variant.SHARED)
        entry.job.variant = variant

    def regroup(self, entry: Entry, group: Hashable) -> None:
        """The waiting job now goes out with another text: into that text's group."""
        if entry.state is State.READY:
            self._ungroup(entry)
            entry.group = group
            self._groups.setdefault(group, {})[entry.seq] = entry
        else:
            entry.group = group

    def hold(self, entry: Entry, until_mono: float, until_wall: dt.datetime) -> None:
        """A READY job's quiet hours began: it waits until they end (then READY again)."""
        if entry.state is not State.READY:
            return
        self._ungroup(entry)
        entry.state = State.DELAYED
        entry.gen += 1  # its items in the heaps are stale: push fresh ones
        entry.not_before, entry.held_until = until_mono, until_wall
        item = (entry.seq, entry.gen, entry)
        heapq.heappush(self._aging[entry.push_class], item)
        heapq.heappush(self._expiry, (entry.job.expires_at, *item))
        heapq.heappush(self._delayed, (until_mono, *item))
        self._compact()

    def waiting_in_order(self, push_class: PushClass) -> Iterator[Entry]:
        """The class's waiting jobs (READY or DELAYED), oldest first.

        Lazy: a walk that stops early pays for what it took (a copy of the heap,
        then one pop per job). The pending set must not change during the walk."""
        heap = list(self._aging[push_class])
        while heap:
            _, gen, entry = heapq.heappop(heap)
            if _valid(entry, gen, _WAITING):
                yield entry

    def _ungroup(self, entry: Entry) -> None:
        members = self._groups[entry.group]
        del members[entry.seq]
        if not members:
            del self._groups[entry.group]

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
                self.finish(entry.job, Outcome.EXPIRED, "ttl_elapsed", entry.last_error)
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
