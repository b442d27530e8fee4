"""The seam between the dispatcher and a push provider."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

from consumer.push import Message, PushJob


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """What one request may carry."""

    max_messages_per_request: int
    max_recipients_per_request: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message to many recipients inside a request.

    ``recipients`` are distinct (a recipient appears once per request); ``jobs``
    are every push this envelope delivers (several jobs may share a recipient).
    """

    message: Message
    recipients: tuple[str, ...]
    jobs: tuple[PushJob, ...]


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
