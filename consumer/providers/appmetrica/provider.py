"""The AppMetrica Push API provider: one group, batch sends, no double pushes.

- ``start()`` finds the push group by name for the app, or creates it (a 409 on
  create means someone else just did: list again).
- ``send(request)`` turns each envelope into batch elements of one
  ``send-batch`` request and returns only when the transfer is final: ``sent``
  returns, ``failed`` raises ``ProviderRejected`` with AppMetrica's errors.
- Idempotency: each transfer carries a deterministic ``client_transfer_id``
  (a hash of its events and content), remembered per event before the request.
  When the dispatcher retries jobs after an unknown outcome, the provider first
  looks up the transfer those jobs travelled in: if AppMetrica has it, the jobs
  are tracked, not resent; if not (404), they go out again. A 409 on send means
  the id was already accepted: the transfer is looked up and tracked. The
  memory is in-process; after a restart the same set of jobs hashes to the same
  id, so AppMetrica's 409 still refuses the duplicate. What no client can rule
  out: a lookup answering 404 while the lost request is still being processed,
  followed by a retry coalesced differently (a new id).
"""

from __future__ import annotations

import asyncio
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
from consumer.providers.appmetrica.client import AppMetricaClient, Conflict, NotFound
from consumer.providers.appmetrica.payload import (
    BatchPlan,
    client_transfer_id,
    count_devices,
    device_recipient,
    extras_key,
    plan_batch,
)
from consumer.providers.base import Envelope, ProviderLimits
from consumer.push import PushJob
from consumer.settings import AppMetricaSettings

log = get_logger(__name__)

_REMEMBERED_EVENTS = 100_000


@dataclass(frozen=True, slots=True)
class _Transfer:
    transfer_id: int
    client_transfer_id: int
    jobs: tuple[PushJob, ...]


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
        self._metrics = metrics or Metrics()
        self._clock = clock or SystemClock()
        self._client = AppMetricaClient(settings, http=http)
        self.limits = ProviderLimits(
            max_messages_per_request=settings.max_messages_per_request,
            max_recipients_per_request=settings.max_devices_per_request,
        )
        self._group_id: int | None = None
        self._group_lock = asyncio.Lock()
        # event_id -> client_transfer_id of an attempt whose outcome is not settled yet
        self._attempts: OrderedDict[str, int] = OrderedDict()

    @property
    def group_id(self) -> int | None:
        return self._group_id

    async def start(self) -> int:
        """Find or create the push group; a refusal (bad token, app) is fatal at start."""
        try:
            return await self._ensure_group()
        except ProviderRejected as exc:
            raise SettingsError(f"AppMetrica group setup failed: {exc}") from exc

    def coalesce_key(self, job: PushJob) -> Hashable:
        return (job.push.message, extras_key(job))

    def recipients(self, job: PushJob) -> Sequence[str]:
        """One id per device (``"{id_type}:{id}"``); no devices -> empty (skipped)."""
        ids = (device_recipient(d.id_type, d.id) for d in job.recipient.devices)
        return tuple(dict.fromkeys(ids))

    async def send(self, request: Sequence[Envelope]) -> None:
        group_id = await self._ensure_group()
        found, remaining = await self._settle_earlier_attempts(group_id, request)
        plan = plan_batch(remaining)
        refusals = [_Refusal(env.jobs, reason) for env, reason in plan.refused]
        transfers = list(found)
        if plan.elements:
            try:
                transfers.append(await self._submit(group_id, plan))
            except ProviderRejected as exc:
                refusals.append(_Refusal(plan.sent_jobs, str(exc), exc))
        for transfer in transfers:
            failure = await self._track(transfer)
            if failure is not None:
                refusals.append(_Refusal(transfer.jobs, failure))
        for envelope in request:
            self._forget(envelope.jobs)
        if refusals:
            raise _rejection(request, refusals)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _ensure_group(self) -> int:
        async with self._group_lock:
            if self._group_id is None:
                self._group_id = await self._find_or_create_group()
            return self._group_id

    async def _find_or_create_group(self) -> int:
        name = self._settings.group_name
        found = await self._find_group(name)
        if found is not None:
            log.info("appmetrica_group_found", group_id=found, group_name=name)
            return found
        try:
            created = int((await self._client.create_group(self._app_id, name))["id"])
        except Conflict:
            found = await self._find_group(name)
            if found is None:
                raise ProviderUnavailable(
                    f"AppMetrica said group {name!r} exists (409) but does not list it"
                ) from None
            log.info("appmetrica_group_found_after_conflict", group_id=found, group_name=name)
            return found
        log.info("appmetrica_group_created", group_id=created, group_name=name)
        return created

    async def _find_group(self, name: str) -> int | None:
        for group in await self._client.list_groups(self._app_id):
            if group.get("name") == name:
                return int(group["id"])
        return None

    async def _settle_earlier_attempts(
        self, group_id: int, request: Sequence[Envelope]
    ) -> tuple[list[_Transfer], list[Envelope]]:
        """Look up the transfers of earlier unsettled attempts; drop their jobs from this send."""
        earlier: dict[int, list[PushJob]] = {}
        for envelope in request:
            for job in envelope.jobs:
                if (ctid := self._attempts.get(job.event_id)) is not None:
                    earlier.setdefault(ctid, []).append(job)
        found: list[_Transfer] = []
        for ctid, jobs in earlier.items():
            try:
                transfer = await self._client.transfer_by_client_id(group_id, ctid)
            except NotFound:
                log.info("appmetrica_transfer_not_found", client_transfer_id=ctid, events=len(jobs))
                self._forget(jobs)
                continue
            log.info(
                "appmetrica_transfer_found",
                client_transfer_id=ctid,
                transfer_id=transfer["id"],
                events=len(jobs),
            )
            found.append(_Transfer(int(transfer["id"]), ctid, tuple(jobs)))
        done = {job.event_id for transfer in found for job in transfer.jobs}
        remaining = [e for env in request if (e := self._without(env, done)) is not None]
        return found, remaining

    def _without(self, envelope: Envelope, event_ids: set[str]) -> Envelope | None:
        jobs = tuple(job for job in envelope.jobs if job.event_id not in event_ids)
        if len(jobs) == len(envelope.jobs):
            return envelope
        if not jobs:
            return None
        recipients = tuple(dict.fromkeys(r for job in jobs for r in self.recipients(job)))
        return Envelope(envelope.message, recipients, jobs)

    async def _submit(self, group_id: int, plan: BatchPlan) -> _Transfer:
        devices = count_devices(plan.elements)
        if devices > self._settings.max_devices_per_request:
            raise ProviderRejected(
                f"the request carries {devices} devices, more than "
                f"APPMETRICA_MAX_DEVICES_PER_REQUEST={self._settings.max_devices_per_request}"
            )
        ctid = client_transfer_id(plan.sent_jobs, plan.elements)
        self._remember(plan.sent_jobs, ctid)
        log.info(
            "appmetrica_transfer_sending",
            client_transfer_id=ctid,
            elements=len(plan.elements),
            devices=devices,
            events=len(plan.sent_jobs),
        )
        body: dict[str, Any] = {
            "group_id": group_id,
            "client_transfer_id": ctid,
            "tag": self._settings.tag,
            "batch": list(plan.elements),
        }
        try:
            transfer_id = await self._client.send_batch(body)
        except Conflict:
            transfer_id = await self._accepted_before(group_id, ctid)
        except OutcomeUnknown:
            raise  # keep the attempt: the retry looks the transfer up first
        except (TransientError, ProviderRejected):
            self._forget(plan.sent_jobs)  # definitely not accepted
            raise
        log.info("appmetrica_transfer_accepted", client_transfer_id=ctid, transfer_id=transfer_id)
        return _Transfer(transfer_id, ctid, plan.sent_jobs)

    async def _accepted_before(self, group_id: int, ctid: int) -> int:
        log.info("appmetrica_transfer_duplicate", client_transfer_id=ctid)
        try:
            transfer = await self._client.transfer_by_client_id(group_id, ctid)
        except NotFound:
            raise OutcomeUnknown(
                f"AppMetrica said client_transfer_id {ctid} is taken (409) but cannot find it"
            ) from None
        return int(transfer["id"])

    async def _track(self, transfer: _Transfer) -> str | None:
        """Poll until final: None when sent, the failure text when failed."""
        settings = self._settings
        deadline = self._clock.monotonic() + settings.status_timeout_s
        delay = settings.status_poll_initial_s
        status = "unknown"
        while True:
            try:
                info = await self._client.transfer(transfer.transfer_id)
            except TransientError as exc:
                log.warning(
                    "appmetrica_status_poll_failed",
                    transfer_id=transfer.transfer_id,
                    error=str(exc),
                )
            else:
                status = str(info.get("status"))
                if status in ("sent", "failed"):
                    return self._finished(transfer, status, info)
            left = deadline - self._clock.monotonic()
            if left <= 0:
                self._metrics.transfers.labels(status="timed_out").inc()
                raise OutcomeUnknown(
                    f"AppMetrica transfer {transfer.transfer_id} (client_transfer_id "
                    f"{transfer.client_transfer_id}) still {status} after "
                    f"{settings.status_timeout_s}s"
                )
            await self._clock.sleep(min(delay, left))
            delay = min(delay * 2, settings.status_poll_max_s)

    def _finished(self, transfer: _Transfer, status: str, info: dict[str, Any]) -> str | None:
        self._metrics.transfers.labels(status=status).inc()
        if status == "sent":
            log.info("appmetrica_transfer_sent", transfer_id=transfer.transfer_id)
            return None
        errors = "; ".join(str(e) for e in info.get("errors") or []) or "no errors given"
        log.warning("appmetrica_transfer_failed", transfer_id=transfer.transfer_id, errors=errors)
        return f"AppMetrica transfer {transfer.transfer_id} failed: {errors}"

    def _remember(self, jobs: Sequence[PushJob], ctid: int) -> None:
        for job in jobs:
            self._attempts[job.event_id] = ctid
            self._attempts.move_to_end(job.event_id)
        while len(self._attempts) > _REMEMBERED_EVENTS:
            self._attempts.popitem(last=False)

    def _forget(self, jobs: Sequence[PushJob]) -> None:
        for job in jobs:
            self._attempts.pop(job.event_id, None)


def _rejection(request: Sequence[Envelope], refusals: list[_Refusal]) -> ProviderRejected:
    everyone = {job.event_id for envelope in request for job in envelope.jobs}
    refused = frozenset(job.event_id for r in refusals for job in r.jobs)
    message = "; ".join(r.reason for r in refusals)
    first = refusals[0].error if len(refusals) == 1 else None
    return ProviderRejected(
        message,
        status=first.status if first else None,
        body=first.body if first else "",
        event_ids=None if refused >= everyone else refused,
    )
