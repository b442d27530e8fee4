"""The two consumers a team would write instead of this service, for ``bench --only ingest``.

Both read the ingest topic from the start with a fresh group, in the benchmark's
process, and do the same logical work per event: validate it, pick a text by
event type and status, render it, write one info-level JSON log line, and commit
once per fetched batch. Neither has what the service adds (pending set, dedupe,
supersession, the provider's budget, dead letters, history, exact per-event offsets).

- ``faststream``: the framework's batch subscriber, as its documentation shows it:
  the handler takes ``list[Event]`` (pydantic validates the contract's own models),
  renders with plain python-liquid from ``model_dump()``, logs through structlog
  (the service's configuration), and FastStream commits after each batch
  (``AckPolicy.ACK``). Its own per-message access log is off (``logger=None``), so it
  pays for one line per event, as the service does.
- ``lean``: a hand-written aiokafka ``getmany`` loop: msgspec structs for the
  contract, f-string texts, one ``orjson`` line per event into a buffered stream,
  ``commit()`` per batch. About the least Python that does the job.

FastStream and msgspec come with the ``bench`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from liquid import Environment

from consumer.events import Event
from consumer.kafka.source import FETCH_MAX_BYTES, MAX_PARTITION_FETCH_BYTES, MAX_POLL_RECORDS
from consumer.local.bench.support import unique

TIMEOUT_S = 600.0

# The texts both peers render: a title and a summary per order status, one pair per
# bonus event type. Liquid source for FastStream, the same words as f-strings for lean.
_ORDER_SUMMARIES = {
    "created": "Мы получили заказ на {total} ₽ и скоро его подтвердим.",
    "confirmed": "Заказ подтверждён, начинаем собирать.",
    "assembling": "Собираем ваш заказ.",
    "ready_for_pickup": "Заказ ждёт вас в пункте выдачи.",
    "handed_to_courier": "Курьер уже в пути.",
    "delivered": "Заказ доставлен. Спасибо за покупку!",
    "cancelled": "Заказ отменён.",
}
_BONUS_TITLES = {
    "bonus.accrued": "Начислили {amount} бонусов",
    "bonus.redeemed": "Списали {amount} бонусов",
    "bonus.expiring": "Сгорят {amount} бонусов",
}
_BONUS_SUMMARY = "Бонусами можно оплатить часть следующей покупки."


def _liquid(text: str) -> str:
    return text.replace("{total}", "{{ order.total.amount }}").replace(
        "{amount}", "{{ bonus.amount }}"
    )


class Counter:
    """Events handled so far, and the clocks read at the first one."""

    def __init__(self, total: int, group: str) -> None:
        self.total = total
        self.group = group  # the consumer group it commits in
        self.finished = asyncio.Event()
        self.done = 0
        self.first = 0
        self.wall0 = 0.0
        self.cpu0 = 0.0

    def add(self, count: int) -> None:
        if not self.first:
            self.first = count
            self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.done += count
        if self.done >= self.total:
            self.finished.set()


# ---- FastStream


class _LiquidTexts:
    def __init__(self) -> None:
        env = Environment()
        self.order_title = env.from_string("Заказ № {{ order.number }}")
        self.order = {s: env.from_string(_liquid(t)) for s, t in _ORDER_SUMMARIES.items()}
        self.bonus = {k: env.from_string(_liquid(t)) for k, t in _BONUS_TITLES.items()}
        self.bonus_summary = env.from_string(_BONUS_SUMMARY)

    def render(self, event: Any) -> tuple[str, str] | None:
        data = event.model_dump()
        if event.event_type == "order.status_changed":
            summary = self.order.get(event.order.status)
            if summary is None:
                return None
            return self.order_title.render(**data), summary.render(**data)
        title = self.bonus.get(event.event_type)
        if title is None:
            return None
        return title.render(**data), self.bonus_summary.render(**data)


async def faststream_peer(bootstrap: str, topic: str, total: int) -> Counter:
    """FastStream's batch subscriber reads the topic; returns when ``total`` are handled."""
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker

    counter = Counter(total, unique("faststream"))
    texts = _LiquidTexts()
    log = structlog.get_logger("peer")
    broker = KafkaBroker(bootstrap, logger=None)

    @broker.subscriber(
        topic,
        batch=True,
        group_id=counter.group,
        auto_offset_reset="earliest",
        max_records=MAX_POLL_RECORDS,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
        ack_policy=AckPolicy.ACK,
    )
    async def handle(events: list[Event]) -> None:
        for event in events:
            rendered = texts.render(event)
            log.info(
                "event_sent" if rendered else "event_skipped",
                event_id=event.event_id,
                event_type=event.event_type,
                title=rendered[0] if rendered else None,
            )
        counter.add(len(events))

    await broker.start()
    try:
        await _until(counter, total, "faststream")
    finally:
        await broker.stop()
    return counter


# ---- lean: aiokafka, msgspec, f-strings, orjson


class _Recipient(msgspec.Struct):
    user_id: str | None = None
    install_id: str | None = None


class _Money(msgspec.Struct):
    amount: Decimal
    currency: str


class _Order(msgspec.Struct):
    id: str
    status: str
    number: str | None = None
    total: _Money | None = None


class _Bonus(msgspec.Struct):
    amount: Decimal


class _Base(msgspec.Struct, tag_field="event_type"):
    event_id: str
    occurred_at: dt.datetime
    recipient: _Recipient


class _OrderEvent(_Base, tag="order.status_changed"):
    order: _Order


class _Accrued(_Base, tag="bonus.accrued"):
    bonus: _Bonus


class _Redeemed(_Base, tag="bonus.redeemed"):
    bonus: _Bonus


class _Expiring(_Base, tag="bonus.expiring"):
    bonus: _Bonus


_LeanEvent = _OrderEvent | _Accrued | _Redeemed | _Expiring
_TYPES = {
    cls: str(cls.__struct_config__.tag) for cls in (_OrderEvent, _Accrued, _Redeemed, _Expiring)
}


def _lean_texts(event: _LeanEvent) -> tuple[str, str] | None:
    if isinstance(event, _OrderEvent):
        summary = _ORDER_SUMMARIES.get(event.order.status)
        if summary is None:
            return None
        total = event.order.total.amount if event.order.total else ""
        return f"Заказ № {event.order.number}", summary.replace("{total}", f"{total}")
    title = _BONUS_TITLES[_TYPES[type(event)]]
    return title.replace("{amount}", f"{event.bonus.amount}"), _BONUS_SUMMARY


async def lean_peer(bootstrap: str, topic: str, total: int) -> Counter:
    """The hand-written loop reads the topic; returns when ``total`` are handled."""
    decoder = msgspec.json.Decoder(_LeanEvent)
    out = io.BufferedWriter(io.FileIO(os.devnull, "w"), buffer_size=1 << 16)
    counter = Counter(total, unique("lean"))
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=counter.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while counter.done < total and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=MAX_POLL_RECORDS)
            handled = 0
            for records in batches.values():
                for record in records:
                    _lean_one(decoder, record, out)
                handled += len(records)
            if handled:
                out.flush()
                await consumer.commit()
                counter.add(handled)
        _check_done(counter, total, "lean")
        return counter
    finally:
        await consumer.stop()
        out.close()


def _lean_one(decoder: msgspec.json.Decoder[Any], record: Any, out: io.BufferedIOBase) -> None:
    event = decoder.decode(record.value)
    rendered = _lean_texts(event)
    out.write(
        orjson.dumps(
            {
                "event": "event_sent" if rendered else "event_skipped",
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "event_id": event.event_id,
                "event_type": _TYPES[type(event)],
                "title": rendered[0] if rendered else None,
                "level": "info",
                "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
    )


async def _until(counter: Counter, total: int, name: str) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(counter.finished.wait(), TIMEOUT_S)
    _check_done(counter, total, name)


def _check_done(counter: Counter, total: int, name: str) -> None:
    if counter.done < total:
        raise RuntimeError(f"the {name} peer handled {counter.done} of {total} events")


Peer = Callable[[str, str, int], Any]
PEERS: dict[str, Peer] = {"faststream": faststream_peer, "lean": lean_peer}
