"""A provider that sends nothing: it logs each request and keeps the last ones.

It coalesces and limits like IMSHOP (one message to at most M userIds), so the
dispatcher behaves as it would in production; tests read ``sent``. What it keeps
is each envelope's message and recipients, not its jobs: an envelope carries up to
M jobs, each holding its event, so the last thousand envelopes of a drain held tens
of thousands of events (up to M thousand), long after their outcomes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence

from consumer.logs import get_logger
from consumer.providers.base import Envelope, ProviderLimits
from consumer.push import PushJob

log = get_logger(__name__)


class DryRunProvider:
    name = "dry-run"

    def __init__(self, *, max_recipients_per_request: int = 1000, keep: int = 1000) -> None:
        self.limits = ProviderLimits(
            max_messages_per_request=1, max_recipients_per_request=max_recipients_per_request
        )
        self.sent: deque[Envelope] = deque(maxlen=keep)

    def coalesce_key(self, job: PushJob) -> Hashable:
        return job.message

    def recipients(self, job: PushJob) -> Sequence[str]:
        push_id = job.recipient.push_id.strip()
        return (push_id,) if push_id else ()

    async def send(self, request: Sequence[Envelope]) -> None:
        for envelope in request:
            self.sent.append(Envelope(envelope.message, envelope.recipients, ()))
            log.info(
                "push_dry_run",
                title=envelope.message.title,
                summary=envelope.message.summary,
                deeplink=envelope.message.deeplink,
                recipients=len(envelope.recipients),
                jobs=len(envelope.jobs),
            )

    async def aclose(self) -> None:
        """Nothing to release."""
