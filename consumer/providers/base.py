"""The seam between the dispatcher and a push provider, and what every provider reads
the same way (``retry_after_s``: how long the provider asked us to wait).

A provider's ``send`` returns when the provider has answered the request. Most
answers are final (IMSHOP's, the dry run's): ``send`` returns None and its
pushes are ``sent``. A provider that decides afterwards (AppMetrica validates a
transfer after accepting it, and may still fail it) returns a *confirmation*:
an awaitable that resolves to a ``Verdict`` once each push's fate is final.
The request ends with ``send`` (its place among the requests in flight, its
budget slot); the pushes' outcomes wait for the verdict.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Awaitable, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from consumer.errors import ProviderRejected
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


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the pushes of an accepted request ended, by event id.

    A push named in neither field was delivered for good. ``refused``: the
    provider failed it for good after accepting it (dead-lettered with the
    provider's reason, so ``dlq replay`` sends it after the fix).
    ``unconfirmed``: the provider never said how it ended; it may have been shown.
    """

    refused: Mapping[str, ProviderRejected] = field(default_factory=dict)
    unconfirmed: frozenset[str] = frozenset()


Confirmation = Awaitable[Verdict]


class PushProvider(Protocol):
    name: str
    limits: ProviderLimits

    def coalesce_key(self, job: PushJob) -> Hashable:
        """Jobs with equal keys may travel in one envelope (IMSHOP: the message)."""
        ...

    def recipients(self, job: PushJob) -> Sequence[str]:
        """The provider-side ids this job reaches; empty means it cannot be delivered."""
        ...

    async def send(self, request: Sequence[Envelope]) -> Confirmation | None:
        """Deliver one request; raise ``TransientError`` or ``ProviderRejected`` on failure.

        Returns None when the answer is final, or a ``Confirmation`` covering every
        job of the request when the provider decides later. A confirmation must
        resolve (the provider bounds its own wait: an end it never learns is
        ``unconfirmed``) and must not raise, except when it is cancelled because
        the provider closes (its jobs then keep no outcome); its own calls count
        through the provider's ``CallQuota``.
        """
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
