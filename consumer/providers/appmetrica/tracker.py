"""Following AppMetrica transfers after the send, outside the dispatcher's request.

A `send-batch` answer means "accepted": validation runs afterwards and the
transfer ends `sent` or `failed`. The provider's ``send`` returns on acceptance,
so the dispatcher's request (its task and its place in the budget) ends with
the HTTP call. The tracker then polls each transfer: first
``status_poll_initial_s`` after the send (right after it, the answer is always
`pending`), then with doubling waits up to ``status_poll_max_s``, until it is
final or ``status_timeout_s`` has passed; the final status is counted in
``appmetrica_transfers_total{status}`` and logged, a failure with AppMetrica's
errors and the events it carried.

Each transfer's ``ending`` future tells its events' fate, which the dispatcher
awaits (``confirmation``): ``TAKEN`` as soon as a poll sees `in_progress` or
`sent` (validation passed: AppMetrica's docs give `failed` only for failed
validation), ``FAILED`` with AppMetrica's errors, ``UNKNOWN`` when tracking ran
out of time. When tracking stops (the provider closes) the open endings are
cancelled: their events keep no outcome.

It also looks up, by `client_transfer_id`, the transfer of a send whose answer
was lost, so that the retry knows whether AppMetrica has it (``lookup()``).

Every call first takes a place in the provider's quota (``CallQuota``): a poll
counts against AppMetrica's limit like a send. Each scheduled call is a task
sleeping on the clock until it is due; ``WORKERS`` tasks make the calls.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from consumer.clock import Clock
from consumer.errors import ConsumerError
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.providers.appmetrica.client import AppMetricaClient, NotFound
from consumer.providers.base import CallQuota
from consumer.settings import AppMetricaSettings

log = get_logger(__name__)

WORKERS = 4
FINAL = ("sent", "failed")
_REMEMBERED_LOOKUPS = 10_000
_LOGGED_EVENT_IDS = 50


class Lookup(enum.Enum):
    PENDING = "pending"
    FOUND = "found"
    NOT_FOUND = "not_found"


class Fate(enum.Enum):
    """What a transfer's status means for the pushes it carries."""

    TAKEN = "taken"  # `in_progress` or `sent`: validated, AppMetrica dispatches it
    FAILED = "failed"  # validation failed: none of it goes out
    UNKNOWN = "unknown"  # not final within the status timeout


@dataclass(frozen=True, slots=True)
class Ending:
    fate: Fate
    reason: str = ""  # a failure's, with AppMetrica's errors


def _future() -> asyncio.Future[Ending]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False, slots=True)
class Transfer:
    """An accepted transfer (or one to look up), with what the logs should say about it."""

    group_id: int
    client_transfer_id: int
    transfer_id: int | None  # None while known only by its client id (a 409, a lookup)
    rule: str
    event_ids: tuple[str, ...]
    since: float  # monotonic time tracking began
    wait_s: float = 0.0  # before the next call, if this one is not the last
    looked_up: Lookup | None = None  # PENDING: look it up by client id, not poll its status
    ending: asyncio.Future[Ending] = field(default_factory=_future)  # its events' fate

    def fields(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "client_transfer_id": self.client_transfer_id,
            "rule": self.rule,
            "events": len(self.event_ids),
        }


class TransferTracker:
    def __init__(
        self,
        client: AppMetricaClient,
        quota: CallQuota,
        settings: AppMetricaSettings,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._client = client
        self._quota = quota
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._due: asyncio.Queue[Transfer] = asyncio.Queue()
        self._sleeping: set[asyncio.Task[None]] = set()
        self._lookups: OrderedDict[int, Transfer] = OrderedDict()  # by client transfer id
        self._open: set[Transfer] = set()  # followed or looked up, not finished yet

    # --- what the provider asks ------------------------------------------------------

    def follow(self, transfer: Transfer) -> None:
        """Poll an accepted transfer until it is final."""
        initial = self._settings.status_poll_initial_s
        transfer.wait_s = min(initial * 2, self._settings.status_poll_max_s)
        self._open.add(transfer)
        self._later(initial, transfer)

    def look_up(self, transfer: Transfer) -> None:
        """Find out (now) whether AppMetrica accepted this client id; then follow it."""
        transfer.looked_up, transfer.wait_s = Lookup.PENDING, self._settings.status_poll_initial_s
        self._lookups[transfer.client_transfer_id] = transfer
        self._lookups.move_to_end(transfer.client_transfer_id)
        while len(self._lookups) > _REMEMBERED_LOOKUPS:
            self._lookups.popitem(last=False)
        self._open.add(transfer)
        self._later(0.0, transfer)

    def lookup(self, client_transfer_id: int) -> Transfer | None:
        """The transfer looked up by this client id, whose ``looked_up`` says what was
        found (None: none asked, given up, or long forgotten)."""
        return self._lookups.get(client_transfer_id)

    @property
    def tracked(self) -> int:
        """Transfers followed or looked up, not finished yet."""
        return len(self._open)

    async def run(self) -> None:
        """Make the calls as they come due, until cancelled."""
        try:
            async with asyncio.TaskGroup() as workers:
                for _ in range(WORKERS):
                    workers.create_task(self._work())
        finally:
            for task in list(self._sleeping):
                task.cancel()
            for transfer in self._open:
                transfer.ending.cancel()  # never learnt: its events keep no outcome

    # --- the calls -------------------------------------------------------------------

    def _later(self, delay_s: float, transfer: Transfer) -> None:
        due = self._clock.monotonic() + delay_s  # from now, not from when the task first runs
        task = asyncio.create_task(self._queue_at(due, transfer))
        self._sleeping.add(task)
        task.add_done_callback(self._sleeping.discard)

    async def _queue_at(self, due: float, transfer: Transfer) -> None:
        await self._clock.sleep(due - self._clock.monotonic())
        self._due.put_nowait(transfer)

    async def _work(self) -> None:
        while True:
            transfer = await self._due.get()
            try:
                await self._call(transfer)
            except Exception:  # a bug here must not stop the tracking of the others
                self._end(transfer, Ending(Fate.UNKNOWN))
                log.exception("appmetrica_tracking_crashed", **transfer.fields())

    async def _call(self, transfer: Transfer) -> None:
        looking_up = transfer.looked_up is Lookup.PENDING
        try:
            async with self._quota.call():
                info = await self._ask(transfer)
        except NotFound:
            if looking_up:
                transfer.looked_up = Lookup.NOT_FOUND
                self._end(transfer)  # nobody waits for it: its jobs are sent again
                log.info("appmetrica_transfer_not_found", **transfer.fields())
                return
            log.warning("appmetrica_status_poll_failed", error="not found", **transfer.fields())
        except ConsumerError as exc:
            event = "appmetrica_lookup_failed" if looking_up else "appmetrica_status_poll_failed"
            log.warning(event, error=str(exc), **transfer.fields())
        else:
            if looking_up:
                self._found(transfer, info)
            status = str(info.get("status"))
            if status in FINAL:
                self._finished(transfer, status, info)
                return
            if status == "in_progress":  # validated: it goes out, though it is not done yet
                _settle(transfer, Ending(Fate.TAKEN))
        self._again(transfer)

    async def _ask(self, transfer: Transfer) -> dict[str, Any]:
        if transfer.transfer_id is None:
            return await self._client.transfer_by_client_id(
                transfer.group_id, transfer.client_transfer_id
            )
        return await self._client.transfer(transfer.transfer_id)

    def _found(self, transfer: Transfer, info: dict[str, Any]) -> None:
        transfer.looked_up = Lookup.FOUND
        transfer.transfer_id = int(info["id"])
        log.info("appmetrica_transfer_found", **transfer.fields())

    def _again(self, transfer: Transfer) -> None:
        """Ask again after a longer wait, unless tracking has run out of time."""
        settings = self._settings
        left = transfer.since + settings.status_timeout_s - self._clock.monotonic()
        if left <= 0:
            self._end(transfer, Ending(Fate.UNKNOWN))
            if transfer.looked_up is Lookup.PENDING:
                self._lookups.pop(transfer.client_transfer_id, None)
                log.warning("appmetrica_lookup_gave_up", **transfer.fields())
                return
            self._metrics.transfers.labels(status="timed_out").inc()
            log.warning(
                "appmetrica_transfer_not_final",
                timeout_s=settings.status_timeout_s,
                **transfer.fields(),
            )
            return
        self._later(min(transfer.wait_s, left), transfer)
        transfer.wait_s = min(transfer.wait_s * 2, settings.status_poll_max_s)

    def _finished(self, transfer: Transfer, status: str, info: dict[str, Any]) -> None:
        self._metrics.transfers.labels(status=status).inc()
        if status == "sent":
            self._end(transfer, Ending(Fate.TAKEN))
            log.info("appmetrica_transfer_sent", **transfer.fields())
            return
        errors = "; ".join(str(e) for e in info.get("errors") or []) or "no errors given"
        reason = f"AppMetrica failed transfer {transfer.transfer_id} of {transfer.rule}: {errors}"
        self._end(transfer, Ending(Fate.FAILED, reason))
        log.error(
            "appmetrica_transfer_failed",
            errors=errors,
            event_ids=list(transfer.event_ids[:_LOGGED_EVENT_IDS]),
            **transfer.fields(),
        )

    def _end(self, transfer: Transfer, ending: Ending | None = None) -> None:
        """Tracking of the transfer is over; its events' fate is ``ending`` (unless a
        poll already settled it)."""
        self._open.discard(transfer)
        if ending is not None:
            _settle(transfer, ending)


def _settle(transfer: Transfer, ending: Ending) -> None:
    if not transfer.ending.done():
        transfer.ending.set_result(ending)
