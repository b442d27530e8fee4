"""The seam between the dispatcher and a push provider, and what every provider reads
the same way (``retry_after_s``: how long the provider asked us to wait)."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from consumer.push import Message, PushJob


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """What one request may carry: envelopes (one per coalesce key) and recipients."""

    max_messages_per_request: int
    max_recipients_per_request: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """The jobs of one coalesce key inside a request.

    For IMSHOP that is one message to many recipients. AppMetrica's key is a
    rule's batch, whose jobs may carry different texts; ``message`` is the first
    job's, and the provider reads each job's own. ``recipients`` are distinct (a
    recipient appears once per request); ``jobs`` are every push this envelope
    delivers (several jobs may share a recipient).
    """

    message: Message
    recipients: tuple[str, ...]
    jobs: tuple[PushJob, ...]


class CallQuota(Protocol):
    """The provider's request quota, shared with the dispatcher.

    The dispatcher takes one place for each request it starts (one ``send``); a
    provider whose API counts other calls too (AppMetrica's status polls and
    lookups) takes a place for each of them: ``async with quota.call(): ...``
    waits for a free place and holds it while the call runs.
    ``consumer.dispatch.budget.Budget`` is one.
    """

    def call(self) -> AbstractAsyncContextManager[object]: ...


class PushProvider(Protocol):
    name: str
    limits: ProviderLimits

    def coalesce_key(self, job: PushJob) -> Hashable:
        """Jobs with equal keys may travel in one envelope (IMSHOP: the message)."""
        ...

    def recipients(self, job: PushJob) -> Sequence[str]:
        """The provider-side ids this job reaches; empty means it cannot be delivered."""
        ...

    async def send(self, request: Sequence[Envelope]) -> None:
        """Deliver one request; raise ``TransientError`` or ``ProviderRejected`` on failure."""
        ...

    async def aclose(self) -> None: ...


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
