"""The AppMetrica Push API provider: a group per class, a request per rule, no double pushes.

- ``start()`` finds the push groups by name for the app, or creates them: one
  per class, ``<APPMETRICA_GROUP_NAME>-transactional`` and ``-marketing`` (a 409
  on create means someone else just did: list again).
- A request carries one rule's pushes (``batching``): its group is the class's,
  its tag the rule id, so the push-campaign report's rows are the rules.
- ``send(request)`` makes one API call, the `send-batch`, and returns once
  AppMetrica accepted the transfer, with a confirmation (``confirmation``).
  The transfer's validation and dispatch happen afterwards; the
  ``TransferTracker`` follows it to `sent` or `failed` outside the
  dispatcher's request, every poll under the provider's quota (``CallQuota``,
  the budget the dispatcher uses too). The confirmation resolves once a poll
  says how the transfer's validation ended: the events are ``sent``, or
  dead-lettered with AppMetrica's errors when it failed. Texts refused before
  any transfer (too large, a 400 for the request) are in its verdict too,
  when some other text of the request went out.
- Idempotency: each transfer carries a deterministic ``client_transfer_id`` (a
  hash of its records and content), remembered per event before the request.
  When a send goes unanswered (timeout, 5xx), the tracker looks that id up at
  once; the dispatcher's retry then drops the jobs AppMetrica has and sends
  the others, so a retry never pushes twice. If the lookup has no answer yet,
  the retry sends nothing and asks to be tried again later. A 409 on send
  means AppMetrica accepted this very content before (a restarted process
  hashes the same jobs to the same id): the jobs are sent. What no client can
  rule out: a lookup answering 404 while the lost request is still being
  processed, followed by a retry coalesced differently (a new id).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from consumer.clock import Clock, SystemClock
from consumer.errors import (
    OutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
    SettingsError,
    TransientError,
)
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.providers.appmetrica.batching import RuleBatches, group_name
from consumer.providers.appmetrica.client import AppMetricaClient, Conflict
from consumer.providers.appmetrica.confirmation import Taken, TransferConfirmation
from consumer.providers.appmetrica.payload import (
    BatchPlan,
    client_transfer_id,
    count_devices,
    deliveries,
    plan_batch,
)
from consumer.providers.appmetrica.tracker import Lookup, Transfer, TransferTracker
from consumer.providers.base import CallQuota, Envelope, ProviderLimits
from consumer.push import PushClass, PushJob
from consumer.settings import AppMetricaSettings

log = get_logger(__name__)

_REMEMBERED_EVENTS = 100_000


@dataclass(slots=True)
class _Refusal:
    jobs: tuple[PushJob, ...]
    reason: str
    error: ProviderRejected | None = None


class AppMetricaProvider:
    name = "appmetrica"

    def __init__(
        self,
        settings: AppMetricaSettings,
        *,
        quota: CallQuota,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if settings.app_id is None:
            raise SettingsError("APPMETRICA_APP_ID is required when PUSH_PROVIDER=appmetrica")
        if not settings.token.get_secret_value():
            raise SettingsError("APPMETRICA_TOKEN is required when PUSH_PROVIDER=appmetrica")
        self._settings = settings
        self._app_id = settings.app_id
        self._quota = quota
        self._clock = clock or SystemClock()
        self._client = AppMetricaClient(settings, http=http)
        self.tracker = TransferTracker(
            self._client, quota, settings, self._clock, metrics or Metrics()
        )
        # One envelope (one coalesce key: class, rule, batch) per request.
        self.limits = ProviderLimits(
            max_messages_per_request=1,
            max_recipients_per_request=settings.max_devices_per_request,
        )
        self._batches = RuleBatches(settings.max_messages_per_request)
        self._groups: dict[PushClass, int] = {}
        self._group_lock = asyncio.Lock()
        self._tracking: asyncio.Task[None] | None = None
        # event_id -> client_transfer_id of an attempt whose outcome is not settled yet
        self._attempts: OrderedDict[str, int] = OrderedDict()

    @property
    def group_ids(self) -> dict[PushClass, int]:
        return dict(self._groups)

    async def start(self) -> dict[PushClass, int]:
        """Find or create the push groups and start tracking; a refusal (bad token,
        unknown app) is fatal at start."""
        try:
            await self._ensure_groups()
        except ProviderRejected as exc:
            raise SettingsError(f"AppMetrica group setup failed: {exc}") from exc
        self._track()
        return self.group_ids

    def coalesce_key(self, job: PushJob) -> Hashable:
        return self._batches.key(job)

    def recipients(self, job: PushJob) -> Sequence[str]:
        """One delivery per device (its text to ``{id_type}:{id}``); no devices -> empty."""
        return deliveries(job)

    async def send(self, request: Sequence[Envelope]) -> TransferConfirmation:
        """Hand the request to AppMetrica; raise if none of it was accepted, else return
        the confirmation that waits for the verdict on each of its jobs."""
        jobs = [job for envelope in request for job in envelope.jobs]
        push_class, rule = _one_rule(jobs)
        # Known since start(); only a provider never started finds its groups here.
        group_id = (await self._ensure_groups())[push_class]
        self._track()
        remaining, taken = self._after_earlier_attempts(jobs)
        plan = plan_batch(remaining)
        refusals = [_Refusal(same_text, reason) for same_text, reason in plan.refused]
        if plan.elements:
            try:
                taken.append((plan.sent_jobs, await self._submit(group_id, rule, plan)))
            except ProviderRejected as exc:
                refusals.append(_Refusal(plan.sent_jobs, str(exc), exc))
        self._forget(jobs)
        if refusals and not taken:
            raise _rejection(jobs, refusals)
        refused = {
            job.event_id: refusal.error or ProviderRejected(refusal.reason)
            for refusal in refusals
            for job in refusal.jobs
        }
        return TransferConfirmation(taken, refused)

    async def aclose(self) -> None:
        if self._tracking is not None:
            self._tracking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tracking
        if self.tracker.tracked:
            log.info("appmetrica_tracking_stopped", left=self.tracker.tracked)
        await self._client.aclose()

    # --- groups ----------------------------------------------------------------------

    async def _ensure_groups(self) -> dict[PushClass, int]:
        async with self._group_lock:
            if len(self._groups) < len(PushClass):
                self._groups = await self._find_or_create_groups()
            return self._groups

    async def _find_or_create_groups(self) -> dict[PushClass, int]:
        found = await self._list_groups()
        for push_class in PushClass:
            name = group_name(self._settings, push_class)
            if name in found:
                log.info("appmetrica_group_found", group_id=found[name], group_name=name)
                continue
            try:
                async with self._quota.call():
                    created = await self._client.create_group(self._app_id, name)
            except Conflict:
                found = await self._list_groups()
                if name not in found:
                    raise ProviderUnavailable(
                        f"AppMetrica said group {name!r} exists (409) but does not list it"
                    ) from None
                log.info("appmetrica_group_found_after_conflict", group_name=name)
                continue
            found[name] = int(created["id"])
            log.info("appmetrica_group_created", group_id=found[name], group_name=name)
        return {c: found[group_name(self._settings, c)] for c in PushClass}

    async def _list_groups(self) -> dict[str, int]:
        async with self._quota.call():
            groups = await self._client.list_groups(self._app_id)
        return {str(g.get("name")): int(g["id"]) for g in groups}

    # --- sending ---------------------------------------------------------------------

    def _track(self) -> None:
        if self._tracking is None:
            self._tracking = asyncio.create_task(self.tracker.run(), name="appmetrica-tracker")

    def _after_earlier_attempts(self, jobs: Sequence[PushJob]) -> tuple[list[PushJob], list[Taken]]:
        """Split off the jobs of earlier sends AppMetrica has (with the transfer that
        carries them: its ending is theirs); the others are to be sent.

        Raises ``ProviderUnavailable`` (no call made) while an earlier send's lookup
        has no answer yet: sending those jobs now could push them twice.
        """
        remaining: list[PushJob] = []
        found: dict[int, tuple[list[PushJob], Transfer]] = {}
        for job in jobs:
            ctid = self._attempts.get(job.event_id)
            earlier = None if ctid is None else self.tracker.lookup(ctid)
            if earlier is None or earlier.looked_up is Lookup.NOT_FOUND:
                remaining.append(job)
            elif earlier.looked_up is Lookup.FOUND:
                found.setdefault(earlier.client_transfer_id, ([], earlier))[0].append(job)
            else:
                raise ProviderUnavailable(
                    f"AppMetrica has not yet said whether it accepted the unanswered send "
                    f"with client_transfer_id {ctid}; its jobs go again once it has"
                )
        return remaining, list(found.values())

    async def _submit(self, group_id: int, rule: str, plan: BatchPlan) -> Transfer:
        """The one call of a ``send``; the dispatcher's budget slot counts it."""
        devices = count_devices(plan.elements)
        if devices > self._settings.max_devices_per_request:
            raise ProviderRejected(
                f"the request carries {devices} devices, more than "
                f"APPMETRICA_MAX_DEVICES_PER_REQUEST={self._settings.max_devices_per_request}"
            )
        ctid = client_transfer_id(plan.sent_jobs, plan.elements)
        self._remember(plan.sent_jobs, ctid)
        transfer = Transfer(
            group_id=group_id,
            client_transfer_id=ctid,
            transfer_id=None,
            rule=rule,
            event_ids=tuple(job.event_id for job in plan.sent_jobs),
            since=self._clock.monotonic(),
        )
        log.info(
            "appmetrica_transfer_sending",
            elements=len(plan.elements),
            devices=devices,
            **transfer.fields(),
        )
        body: dict[str, Any] = {
            "group_id": group_id,
            "client_transfer_id": ctid,
            "tag": rule,
            "batch": list(plan.elements),
        }
        try:
            transfer.transfer_id = await self._client.send_batch(body)
        except Conflict:
            log.info("appmetrica_transfer_duplicate", **transfer.fields())
        except OutcomeUnknown:
            self.tracker.look_up(transfer)
            raise  # the attempt stays remembered: the retry asks what the lookup found
        except (TransientError, ProviderRejected):
            self._forget(plan.sent_jobs)  # definitely not accepted
            raise
        log.info("appmetrica_transfer_accepted", **transfer.fields())
        self.tracker.follow(transfer)
        self._forget(plan.sent_jobs)
        return transfer

    def _remember(self, jobs: Sequence[PushJob], ctid: int) -> None:
        for job in jobs:
            self._attempts[job.event_id] = ctid
            self._attempts.move_to_end(job.event_id)
        while len(self._attempts) > _REMEMBERED_EVENTS:
            self._attempts.popitem(last=False)

    def _forget(self, jobs: Sequence[PushJob]) -> None:
        for job in jobs:
            self._attempts.pop(job.event_id, None)


def _one_rule(jobs: Sequence[PushJob]) -> tuple[PushClass, str]:
    """The class and rule every job of the request shares (the provider's limits say so)."""
    rules = {(job.push.push_class, job.push.rule_id) for job in jobs}
    if len(rules) != 1:
        raise ValueError(f"an AppMetrica request carries one rule's pushes, got {sorted(rules)}")
    return rules.pop()


def _rejection(jobs: Sequence[PushJob], refusals: list[_Refusal]) -> ProviderRejected:
    everyone = {job.event_id for job in jobs}
    refused = frozenset(job.event_id for r in refusals for job in r.jobs)
    message = "; ".join(r.reason for r in refusals)
    first = refusals[0].error if len(refusals) == 1 else None
    return ProviderRejected(
        message,
        status=first.status if first else None,
        body=first.body if first else "",
        event_ids=None if refused >= everyone else refused,
    )
