"""The dead-letter topic: bad events, kept byte for byte, with the reason attached.

A dead-letter record has the original key, value and headers, plus these headers
(UTF-8 text values), so the event can be understood and replayed after a fix:

- ``dlq.reason``: short code, e.g. ``invalid_json``, ``schema_violation`` (the
  kind of an ``InvalidEvent``), ``render_failed``, ``provider_rejected``,
  ``unexpected_error`` (see the README for the full list; a push that fails
  for a while is retried until its ttl and ends ``expired``, not here)
- ``dlq.error_class``: the exception class name, e.g. ``InvalidEvent``
- ``dlq.message``: the error message, at most 1024 bytes (cut on a character
  boundary, ending with ``…`` when cut)
- ``dlq.source_topic``, ``dlq.source_partition``, ``dlq.source_offset``: where the
  original record was
- ``dlq.source_timestamp_ms``: the original record's timestamp, when known
- ``dlq.event_id``: the event's id, when it could be read
- ``dlq.time``: when it was dead-lettered (RFC 3339, UTC)

Original headers whose names start with ``dlq.`` (a record replayed from the
dead-letter topic that failed again) are replaced by the new ones, so each name
appears once. ``write`` returns only after the broker acknowledged the record
(``acks="all"``, idempotent producer): the source offset may be committed only then.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from consumer.clock import Clock, SystemClock
from consumer.kafka.clients import client_kwargs
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.push import Origin
from consumer.settings import KafkaSettings

log = get_logger(__name__)

HEADER_PREFIX = "dlq."
MESSAGE_MAX_BYTES = 1024
_ELLIPSIS = "…"


def build_producer(settings: KafkaSettings) -> Any:
    """An unstarted producer for the dead-letter topic (call inside the event loop)."""
    return AIOKafkaProducer(
        **client_kwargs(settings),
        client_id=f"{settings.group_id}-dead-letter",
        acks="all",
        enable_idempotence=True,
    )


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes on a character boundary."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(_ELLIPSIS.encode("utf-8"))
    return encoded[: max(room, 0)].decode("utf-8", "ignore") + _ELLIPSIS


def dead_letter_headers(
    origin: Origin,
    *,
    reason: str,
    error_class: str,
    message: str,
    event_id: str | None,
    time: str,
) -> list[tuple[str, bytes]]:
    ours = {
        "reason": reason,
        "error_class": error_class,
        "message": truncate_utf8(message, MESSAGE_MAX_BYTES),
        "source_topic": origin.topic,
        "source_partition": str(origin.partition),
        "source_offset": str(origin.offset),
    }
    if origin.timestamp_ms is not None:
        ours["source_timestamp_ms"] = str(origin.timestamp_ms)
    if event_id is not None:
        ours["event_id"] = event_id
    ours["time"] = time
    kept = [(name, value) for name, value in origin.headers if not name.startswith(HEADER_PREFIX)]
    return kept + [(HEADER_PREFIX + name, value.encode("utf-8")) for name, value in ours.items()]


class DeadLetterWriter:
    def __init__(
        self, producer: Any, topic: str, metrics: Metrics, *, clock: Clock | None = None
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._clock = clock or SystemClock()

    @property
    def topic(self) -> str:
        return self._topic

    async def write(
        self,
        origin: Origin,
        *,
        reason: str,
        error_class: str,
        message: str,
        event_id: str | None,
    ) -> None:
        """Write and wait for the broker's ack; a Kafka error propagates (nothing is lost)."""
        headers = dead_letter_headers(
            origin,
            reason=reason,
            error_class=error_class,
            message=message,
            event_id=event_id,
            time=self._clock.now().isoformat(timespec="milliseconds"),
        )
        sent = await self._producer.send_and_wait(
            self._topic, value=origin.value, key=origin.key, headers=headers
        )
        self._metrics.dead_letters.labels(reason=reason).inc()
        log.info(
            "dead_lettered",
            reason=reason,
            error_class=error_class,
            dlq_topic=self._topic,
            dlq_partition=sent.partition,
            dlq_offset=sent.offset,
            source=f"{origin.topic}/{origin.partition}@{origin.offset}",
            event_id=event_id,
        )
