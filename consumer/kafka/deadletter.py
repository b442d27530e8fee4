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

A dead letter that would not fit a Kafka record (``RECORD_MAX_BYTES``, under the
producer's and the broker's default 1 MB limits; a source record just under
1 MB plus these headers is over) carries what fits: the original headers are
dropped if they must be, the value is cut, and ``dlq.truncated`` says what was
cut. If the broker refuses even that (a topic configured smaller), the dead
letter goes without the value. Nothing that cannot be written may block the
dead letters behind it; ``dlq replay`` leaves such records alone (the original
is still at ``dlq.source_*`` while the topic keeps it).

``check_dead_letter_topic`` runs at start: a topic that is missing (brokers
in production create none on demand), internal, or that this client may not
write would otherwise show only at the first dead letter, hours later, as a
write retried for ever until ``/healthz`` fails. It stops the start instead,
naming ``KAFKA_DLQ_TOPIC`` and the fix. (A missing *source* topic is only a
warning: it may be created later, and is read once it is.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from consumer.clock import Clock, SystemClock
from consumer.errors import FatalError, SettingsError
from consumer.kafka.access import TopicAccess, describe_topic
from consumer.kafka.clients import client_kwargs
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.push import Origin
from consumer.settings import KafkaSettings

log = get_logger(__name__)

HEADER_PREFIX = "dlq."
TRUNCATED_HEADER = HEADER_PREFIX + "truncated"
MESSAGE_MAX_BYTES = 1024
# The producer refuses a record over its max_request_size; the broker, a batch over
# message.max.bytes (1 MB and 12 bytes by default): a dead letter stays under both.
PRODUCER_MAX_REQUEST_BYTES = 1024 * 1024
RECORD_MAX_BYTES = 1_000_000
KEY_MAX_BYTES = 1024  # for a key that alone would not fit
# A broker that creates topics on demand does so a moment after it is asked (KRaft:
# through the controller), answering "unknown topic" meanwhile: how long to look.
CREATED_WITHIN_S = 5.0
_LOOK_EVERY_S = 0.2
_ELLIPSIS = "…"


def build_producer(settings: KafkaSettings) -> Any:
    """An unstarted producer for the dead-letter topic (call inside the event loop)."""
    return AIOKafkaProducer(
        **client_kwargs(settings),
        client_id=f"{settings.group_id}-dead-letter",
        acks="all",
        enable_idempotence=True,
        max_request_size=PRODUCER_MAX_REQUEST_BYTES,
    )


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Bytes of the record in a batch of its own, as the producer counts them."""
        return int(
            DefaultRecordBatchBuilder.estimate_size_in_bytes(self.key, self.value, self.headers)
        )


def fit(record: DeadLetterRecord, limit: int = RECORD_MAX_BYTES) -> DeadLetterRecord:
    """``record`` as it is if it fits ``limit``; else cut to fit, said in ``dlq.truncated``.

    Our headers always stay; the original headers stay if they leave half the room
    for the value; a key over ``KEY_MAX_BYTES`` is cut; then the value is cut.
    """
    if record.size <= limit:
        return record
    ours = [(n, v) for n, v in record.headers if n.startswith(HEADER_PREFIX)]
    theirs = [(n, v) for n, v in record.headers if not n.startswith(HEADER_PREFIX)]
    cuts = []
    key = record.key
    if key is not None and len(key) > KEY_MAX_BYTES:
        key = key[:KEY_MAX_BYTES]
        cuts.append(f"key cut from {len(record.key or b'')} to {len(key)} bytes")
    if theirs and DeadLetterRecord(None, None, theirs).size > limit // 2:
        cuts.append(f"{len(theirs)} original headers dropped")
        theirs = []
    value = record.value or b""
    fitted = record
    for _ in range(3):  # the cut changes a few length prefixes: settle in a step or two
        said = cuts
        if len(value) < len(record.value or b""):
            said = [f"value cut from {len(record.value or b'')} to {len(value)} bytes", *cuts]
        note = _truncated("; ".join(said) + " to fit a Kafka record")
        kept = value if record.value is not None else None
        fitted = DeadLetterRecord(key, kept, [*theirs, *ours, note])
        if (excess := fitted.size - limit) <= 0:
            break
        value = value[: max(0, len(value) - excess)]
    return fitted


def without_value(record: DeadLetterRecord, value_bytes: int, why: str) -> DeadLetterRecord:
    """Only our headers and the key: what is left when the broker refuses the rest."""
    ours = [(n, v) for n, v in record.headers if n.startswith(HEADER_PREFIX)]
    ours = [(n, v) for n, v in ours if n != TRUNCATED_HEADER]
    note = _truncated(f"value of {value_bytes} bytes and original headers left out: {why}")
    return DeadLetterRecord((record.key or b"")[:KEY_MAX_BYTES] or None, None, [*ours, note])


def _truncated(text: str) -> tuple[str, bytes]:
    return (TRUNCATED_HEADER, truncate_utf8(text, MESSAGE_MAX_BYTES).encode("utf-8"))


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
        """Write and wait for the broker's ack; a Kafka error propagates (nothing is lost),
        except one saying the record is too large: then it goes without its value."""
        headers = dead_letter_headers(
            origin,
            reason=reason,
            error_class=error_class,
            message=message,
            event_id=event_id,
            time=self._clock.now().isoformat(timespec="milliseconds"),
        )
        record = fit(DeadLetterRecord(origin.key, origin.value, headers))
        try:
            sent = await self._send(record)
        except MessageSizeTooLargeError as exc:  # the topic takes less than Kafka's default
            refused = f"the broker refused {record.size} bytes ({exc})"
            record = without_value(record, len(origin.value or b""), refused)
            sent = await self._send(record)
        if TRUNCATED_HEADER in dict(record.headers):
            log.warning(
                "dead_letter_truncated",
                source=f"{origin.topic}/{origin.partition}@{origin.offset}",
                event_id=event_id,
                cut=dict(record.headers)[TRUNCATED_HEADER].decode("utf-8"),
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

    async def _send(self, record: DeadLetterRecord) -> Any:
        return await self._producer.send_and_wait(
            self._topic, value=record.value, key=record.key, headers=record.headers
        )


async def check_dead_letter_topic(client: Any, settings: KafkaSettings) -> None:
    """Stop the start (``SettingsError``, one line) when no dead letter could be written.

    ``client`` is the started dead-letter producer's. A missing topic is first
    asked for as a write would ask (a broker with ``auto.create.topics.enable``
    creates it: said in a warning, since it then has the broker's default
    partitions and retention).
    """
    topic = settings.dlq_topic
    try:
        access = await describe_topic(client, topic)
        if access.missing and not access.internal:
            access = await _created_on_demand(client, topic)
    except KafkaError as exc:
        raise FatalError(
            f"cannot ask Kafka at {settings.bootstrap_servers} about KAFKA_DLQ_TOPIC={topic!r}: "
            f"{exc!r}"
        ) from exc
    if problem := _unwritable(access, settings):
        raise SettingsError(f"KAFKA_DLQ_TOPIC={topic!r}: {problem}")
    if access.error is not None:  # e.g. a leader being elected: writes wait for it
        log.warning("kafka_dlq_topic_unsettled", topic=topic, error=access.error.__name__)


async def _created_on_demand(client: Any, topic: str) -> TopicAccess:
    access = await describe_topic(client, topic, create=True)
    deadline = asyncio.get_running_loop().time() + CREATED_WITHIN_S
    while access.missing or access.being_created:
        if asyncio.get_running_loop().time() >= deadline:
            return access
        await asyncio.sleep(_LOOK_EVERY_S)
        access = await describe_topic(client, topic)
    log.warning(
        "kafka_dlq_topic_created",
        topic=topic,
        partitions=access.partitions,
        detail="the broker created KAFKA_DLQ_TOPIC on demand, with its default partitions "
        "and retention; create it yourself to choose them (production brokers create none)",
    )
    return access


def _unwritable(access: TopicAccess, settings: KafkaSettings) -> str | None:
    """Why no dead letter could be written to the topic, with the fix; None if they can."""
    topic, brokers = access.topic, settings.bootstrap_servers
    who = f"the Kafka user {settings.sasl_username!r}" if settings.sasl_username else "this client"
    principal = f"User:{settings.sasl_username or 'NAME'}"
    grant = (
        f"kafka-acls.sh --bootstrap-server {brokers} --add --allow-principal {principal} "
        f"--operation Describe --operation Write --topic {topic}"
    )
    if access.internal:
        return "an internal Kafka topic; name a topic of your own for the dead letters"
    if access.missing:
        return (
            f"no such topic at {brokers}, and the brokers create none on demand; create it "
            f"with the partitions and retention you want, e.g. kafka-topics.sh "
            f"--bootstrap-server {brokers} --create --topic {topic} --partitions 3 "
            f"--config retention.ms=2592000000 (30 days), or name an existing topic"
        )
    if access.denied:
        return f"Kafka does not let {who} see this topic; grant it Describe and Write: {grant}"
    if access.may_write is False:
        return f"{who} may see this topic but not write to it; grant it Write: {grant}"
    return None
