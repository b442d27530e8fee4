"""What the dispatcher awaits after an AppMetrica send: the verdict on each of its pushes.

A send's jobs went in transfers AppMetrica accepted (the one just sent, or an
earlier one whose answer was lost and that the lookup found), or were refused
before any transfer (a text too large, a 400). The confirmation waits for each
transfer's ``ending`` (the tracker's polls, under the provider's quota) and
says, per event: delivered (validated), refused (the transfer failed, or the job
was refused at once: dead-lettered with AppMetrica's reason), or unconfirmed
(tracking ran out of time).

Nothing runs until the dispatcher awaits it, and awaiting it never cancels a
transfer's ``ending``: another send may be waiting for the same transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from consumer.errors import ProviderRejected
from consumer.providers.appmetrica.tracker import Fate, Transfer
from consumer.providers.base import Verdict
from consumer.push import PushJob

Taken = tuple[Sequence[PushJob], Transfer]  # jobs, and the accepted transfer carrying them


class TransferConfirmation:
    def __init__(self, taken: Sequence[Taken], refused: Mapping[str, ProviderRejected]) -> None:
        self._taken = taken
        self._refused = refused

    def __await__(self) -> Generator[Any, None, Verdict]:
        return self._verdict().__await__()

    async def _verdict(self) -> Verdict:
        refused = dict(self._refused)
        unconfirmed: set[str] = set()
        for jobs, transfer in self._taken:
            ending = await asyncio.shield(transfer.ending)
            ids = [job.event_id for job in jobs]
            if ending.fate is Fate.FAILED:
                refused.update(dict.fromkeys(ids, ProviderRejected(ending.reason)))
            elif ending.fate is Fate.UNKNOWN:
                unconfirmed.update(ids)
        return Verdict(refused, frozenset(unconfirmed))
