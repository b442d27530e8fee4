"""Which text each waiting push goes out with: personal while the budget keeps up.

A rule may give a push a shared text besides its own (``RenderedPush.shared``),
and a time, ``personal_within``, after the event by which the personal one must
go out; counted from when the service got the event, if that is later (a
backlog after a pause, a replay), or from the end of the quiet hours that held
it: the budget can do nothing about the time before. The planner decides from when the push
*would* be sent, not from how long it has waited, so a burst switches at once,
and it decides again each time a request is about to start, so pushes go
personal again as soon as the budget keeps up.

The walk, per class, oldest first as the scheduler serves them: count the
requests needed ahead of each push (a group not yet counted costs a request per
``max_recipients_per_request`` recipients; a group already counted with room
costs nothing more), turn the push's own personal request into a time
(``estimate.SendTimes`` for the budget, ``estimate.Turns`` for the classes'
shares), and compare it with the push's deadline. A push whose personal send
would come later goes shared, joining its rule's shared group (counted where
its oldest member stands); one that would be in time goes personal. Only pushes
whose history item is written may go shared (``PushJob.shareable``). Pushes not
yet in line (a retry's backoff, quiet hours) are passed over: they are decided
when they are.

Bounded work: the walk stops where the next new request would start later than
every deadline could be (``personal_within`` plus the most an event's time ran
ahead of ours), or after ``WALK_LIMIT`` pushes. Beyond that point, a push still
going personal is sent shared only when even the earliest request it could get
is late: a heap of those pushes by deadline hands over just the late ones, so a
long queue costs a walk of its front and the late ones once each. No walk at all
while it could change nothing: no push shared, every request it could count free
to start now, and the earliest deadline of those going personal still ahead.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from consumer.dispatch.estimate import NEVER, SendTimes, Turns
from consumer.dispatch.pending import Entry, PendingSet, State
from consumer.push import PushClass, PushJob, Variant

WALK_LIMIT = 5_000
_ROUNDS = 4
_LATE_EPSILON_S = 1e-6  # rounding of wall against monotonic time: not "late" for it


@dataclass(slots=True)
class _Walk:
    """What one class's walk counted: requests so far, and where each group's stands."""

    turns: Turns
    times: SendTimes
    room: int
    requests: int = 0
    groups: dict[Hashable, list[int]] = field(default_factory=dict)  # group -> [index, room]
    stopped_at: int | float = math.inf  # the seq it stopped at (inf: it walked everything)

    def index_for(self, group: Hashable, recipients: int) -> int:
        """The request a push of this group would ride in (a new one if none has room)."""
        counted = self.groups.get(group)
        if counted is not None and counted[1] >= recipients:
            return counted[0]
        return self.requests

    def place(self, group: Hashable, recipients: int) -> None:
        counted = self.groups.get(group)
        if counted is not None and counted[1] >= recipients:
            counted[1] -= recipients
            return
        self.groups[group] = [self.requests, self.room - recipients]
        self.requests += 1

    @property
    def needs(self) -> int | None:
        """The requests the class needs (None: more than the walk counted)."""
        return self.requests if self.stopped_at == math.inf else None

    def time_of(self, index: int | float) -> float:
        return self.times.at(self.turns.position(int(index))) if index != NEVER else NEVER

    def next_new(self) -> float:
        """When a request not yet counted would start: the earliest any push beyond gets."""
        return self.time_of(self.requests)


class ReachPlanner:
    def __init__(
        self,
        pending: PendingSet,
        *,
        shared_key: Callable[[PushJob], Hashable],
        max_recipients: int,
        marketing_share: float,
    ) -> None:
        self._pending = pending
        self._shared_key = shared_key  # the provider's coalesce key (of a job now shared)
        self._room = max_recipients
        self._share = marketing_share
        # Shareable pushes going personal, per class, by deadline (lazy: checked on pop).
        self._personal: dict[PushClass, list[tuple[float, int, Entry]]] = {c: [] for c in PushClass}
        self._needed: dict[PushClass, int | None] = {c: None for c in PushClass}
        self._within_s = 0.0  # the longest personal_within of a push seen
        self._ahead_s = 0.0  # the most an event's time was ahead of our clock

    def track(self, entry: Entry, now_wall: dt.datetime) -> None:
        """A shareable push waits with its personal text (a new one, or one back from a
        request that failed): the planner follows its deadline."""
        job = entry.job
        self._within_s = max(self._within_s, job.push.personal_within_s)
        self._ahead_s = max(self._ahead_s, (job.occurred_at - now_wall).total_seconds())
        self._follow(entry)

    def _follow(self, entry: Entry) -> None:
        heap = self._personal[entry.push_class]
        heapq.heappush(heap, (_deadline(entry), entry.seq, entry))
        if len(heap) > 2 * self._pending.shareable_waiting + 64:  # drop what left or changed
            heap[:] = [item for item in heap if _going_personal(item[2])]
            heapq.heapify(heap)

    def plan(self, times: SendTimes, credit: float, now_mono: float, now_wall: dt.datetime) -> None:
        """Decide every waiting push's text for the request about to start."""
        if not self._pending.shareable_waiting:
            return
        clock = (times, credit, now_mono, now_wall.timestamp())
        if self._all_personal_in_time(times, now_mono, clock[3]):
            return
        # Each class's turns depend on how many requests the other needs, which its
        # choices change: walk both until marketing's count holds (more marketing
        # requests only push order news later, so this settles in a few rounds).
        marketing_needs = self._needed[PushClass.MARKETING]
        for _ in range(_ROUNDS):
            orders = self._walk_class(PushClass.TRANSACTIONAL, marketing_needs, *clock)
            offers = self._walk_class(PushClass.MARKETING, orders.needs, *clock)
            settled = offers.needs == marketing_needs
            marketing_needs = offers.needs
            if settled:
                break
        for push_class, walk in ((PushClass.TRANSACTIONAL, orders), (PushClass.MARKETING, offers)):
            self._needed[push_class] = walk.needs
            self._hand_over_late(push_class, walk, now_mono, clock[3])

    def _all_personal_in_time(self, times: SendTimes, now_mono: float, wall: float) -> bool:
        """True when the walk would change nothing: no push is shared, every request it
        could count starts by now (a budget with room for them all), and every push going
        personal would be sent by then within its deadline. A budget that never binds
        then costs no walk of every waiting push before each request."""
        share = min(self._share, 1.0 - self._share)
        if self._pending.shared_waiting or share <= 0.0:
            return False
        # The class's j-th request is at most the (j + 2) / share-th of both classes'.
        counted = math.ceil((self._pending.waiting + 2) / share) + 2
        latest = max(times.latest_of_first(counted), now_mono)
        if latest == NEVER:
            return False
        for heap in self._personal.values():
            while heap and not _going_personal(heap[0][2]):
                heapq.heappop(heap)
            if not heap:
                continue
            deadline, _, entry = heap[0]
            if _deadline(entry) != deadline:
                return False  # held since it was followed: the walk decides
            if latest > now_mono + (deadline - wall) + _LATE_EPSILON_S:
                return False
        return True

    def _walk_class(
        self,
        push_class: PushClass,
        others: int | None,
        times: SendTimes,
        credit: float,
        now_mono: float,
        wall: float,
    ) -> _Walk:
        """Walk one class, the other needing ``others`` requests (None: unknown, many)."""
        other = (
            PushClass.MARKETING
            if push_class is PushClass.TRANSACTIONAL
            else PushClass.TRANSACTIONAL
        )
        if self._pending.ready_top(other) is None:
            others = 0
        turns = Turns(push_class, share=self._share, credit=credit, others=others)
        return self._walk(push_class, _Walk(turns, times, self._room), now_mono, wall)

    def _walk(self, push_class: PushClass, walk: _Walk, now_mono: float, wall: float) -> _Walk:
        horizon = now_mono + self._within_s + max(0.0, self._ahead_s)
        for steps, entry in enumerate(self._pending.waiting_in_order(push_class)):
            if steps >= WALK_LIMIT or walk.next_new() > horizon:
                walk.stopped_at = entry.seq
                break
            if entry.not_before > now_mono:
                continue  # not in line yet: it is decided once it is
            recipients = len(entry.recipients)
            if not entry.job.shareable:
                walk.place(entry.group, recipients)
                continue
            index = walk.index_for(entry.personal_group, recipients)
            sent_at = max(walk.time_of(index), entry.not_before)
            if sent_at <= now_mono + (_deadline(entry) - wall) + _LATE_EPSILON_S:
                self._choose(entry, Variant.PERSONAL)
                walk.place(entry.personal_group, recipients)
            else:
                self._choose(entry, Variant.SHARED)
                walk.place(entry.shared_group, recipients)
        return walk

    def _hand_over_late(
        self, push_class: PushClass, walk: _Walk, now_mono: float, wall: float
    ) -> None:
        """Beyond the walk: the pushes going personal whose earliest possible request is
        past their deadline go shared; the others keep waiting as they are."""
        if walk.stopped_at == math.inf:
            return
        earliest = walk.next_new()
        heap = self._personal[push_class]
        keep = []
        while heap:
            deadline, seq, entry = heap[0]
            if now_mono + (deadline - wall) + _LATE_EPSILON_S >= earliest:
                break
            heapq.heappop(heap)
            if not _going_personal(entry):
                continue
            current = _deadline(entry)
            in_line = entry.not_before <= now_mono
            if current > deadline or seq < walk.stopped_at or not in_line:
                keep.append((current, seq, entry))  # decided by the walk, or not in line
                continue
            joined = walk.groups.get(entry.personal_group)
            if joined is not None and joined[1] >= len(entry.recipients):
                sent_at = walk.time_of(joined[0])
                if sent_at <= now_mono + (current - wall) + _LATE_EPSILON_S:
                    keep.append((current, seq, entry))  # it rides a request in time
                    continue
            self._choose(entry, Variant.SHARED)
        for item in keep:
            heapq.heappush(heap, item)

    def _choose(self, entry: Entry, variant: Variant) -> None:
        job = entry.job
        if job.variant is variant:
            return
        self._pending.switch(entry, variant)
        if variant is Variant.SHARED:
            if entry.shared_group is None:
                entry.shared_group = self._shared_key(job)  # the key of the shared text
            self._pending.regroup(entry, entry.shared_group)
        else:
            self._pending.regroup(entry, entry.personal_group)
            self._follow(entry)


def _deadline(entry: Entry) -> float:
    """When the push's personal text must be out by (a wall-clock timestamp): its
    ``personal_within`` after the event, or after the service got it or the quiet hours
    that held it ended, if later (the budget can do nothing about the time before)."""
    job = entry.job
    start = job.occurred_at
    for later in (entry.received_at, entry.held_until):
        if later is not None and later > start:
            start = later
    return start.timestamp() + job.push.personal_within_s


def _going_personal(entry: Entry) -> bool:
    return (
        entry.state in (State.READY, State.DELAYED)
        and entry.job.variant is Variant.PERSONAL
        and entry.job.shareable
    )
