"""``python -m consumer dlq replay``: send dead-lettered records back to their topic.

After a fix (a mapping corrected, a producer bug gone) the records in the
dead-letter topic can be re-published to the topic they came from
(``dlq.source_topic``) with their original key, value and headers. The
``dlq.*`` headers are dropped and one is added, ``dlq.replayed_from`` =
``<dlq topic>/<partition>@<offset>``, so a replayed record can be told from an
original; if it fails again the service dead-letters it anew and, as with every
``dlq.*`` header, replaces the marker with the new failure's headers. The key
picks the partition (the producer's default partitioner), as it did for the original.

The dead-letter topic is read from its beginning up to the end offsets captured
at the start, without a consumer group (assign and seek): a bounded scan that
never commits, and records dead-lettered again during the replay lie after the
captured ends, so a replay never loops. Filters: ``--reason``, ``--event-type``
(read from the value's JSON, best effort: a value that is not JSON has none) and
``--since`` / ``--until`` (the ``dlq.time`` header, else the record timestamp).
``--dry-run`` lists what would be replayed and publishes nothing. A dead letter
whose value was cut to fit the topic (``dlq.truncated``) is never replayed: its
original is still at ``dlq.source_*`` while that topic keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from consumer.errors import FatalError
from consumer.kafka.clients import assign_topic, client_kwargs, connect
from consumer.logs import configure_logging
from consumer.replay.progress import ProgressBar
from consumer.replay.select import DeadLetter, ReplayFilter, describe, parse_time
from consumer.settings import KafkaSettings, LogLevel, bootstrap_servers_arg, load_settings

STALL_AFTER_S = 30.0
IN_FLIGHT = 500  # records sent before waiting for their acks; the producer keeps their order


@dataclass(slots=True)
class ReplayReport:
    scanned: int = 0
    matched: int = 0
    replayed: int = 0
    skipped: int = 0  # matched, but no dlq.source_topic to send it to
    cut: int = 0  # matched, but its value was cut to fit the dead-letter topic
    reasons: Counter[str] = field(default_factory=Counter)


OnMatch = Callable[[DeadLetter, str | None], None]


async def replay(
    settings: KafkaSettings,
    dlq_topic: str,
    selection: ReplayFilter,
    *,
    dry_run: bool = False,
    to_topic: str | None = None,
    on_match: OnMatch | None = None,
    progress: ProgressBar | None = None,
) -> ReplayReport:
    """Scan ``dlq_topic`` to its end offsets at the start; replay what ``selection`` matches."""
    run = _Run(selection, to_topic, on_match, progress)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=None, enable_auto_commit=False, client_id="dlq-replay"
    )
    await connect(consumer.start, consumer.stop, settings.bootstrap_servers)
    try:
        ends = await _assign_all(consumer, settings, dlq_topic)
        if progress is not None:
            progress.start(sum(end - start for start, end in ends.values()))
        if not dry_run:
            run.producer = AIOKafkaProducer(
                **client_kwargs(settings), acks="all", enable_idempotence=True
            )
            await run.producer.start()
        async for letter in _scan(consumer, ends):
            await run.take(letter)
        await run.acked()
    except KafkaError as exc:
        raise FatalError(
            f"replay from {dlq_topic} stopped: {type(exc).__name__}: {exc}; {run.report}"
        ) from exc
    finally:
        if progress is not None:
            progress.finish()
        if run.producer is not None:
            await run.producer.stop()
        await consumer.stop()
    return run.report


@dataclass(slots=True)
class _Run:
    selection: ReplayFilter
    to_topic: str | None
    on_match: OnMatch | None
    progress: ProgressBar | None
    producer: AIOKafkaProducer | None = None
    report: ReplayReport = field(default_factory=ReplayReport)
    sending: list[asyncio.Future[Any]] = field(default_factory=list)

    async def take(self, letter: DeadLetter) -> None:
        report = self.report
        report.scanned += 1
        if self.selection.matches(letter):
            target = None if letter.cut else self.to_topic or letter.dlq.get("source_topic")
            report.matched += 1
            report.reasons[letter.reason] += 1
            report.cut += 1 if letter.cut else 0
            report.skipped += 0 if target or letter.cut else 1
            if self.on_match is not None:
                self.on_match(letter, target)
            if self.producer is not None and target:
                headers = letter.replay_headers()
                self.sending.append(
                    await self.producer.send(target, letter.value, key=letter.key, headers=headers)
                )
        if len(self.sending) >= IN_FLIGHT:
            await self.acked()
        if self.progress is not None:
            self.progress.update(report.scanned, f"matched {report.matched}")

    async def acked(self) -> None:
        """Wait for the broker's acks; a failure raises and the report says what got through."""
        await asyncio.gather(*self.sending)
        self.report.replayed += len(self.sending)
        self.sending.clear()


async def _assign_all(
    consumer: AIOKafkaConsumer, settings: KafkaSettings, topic: str
) -> dict[TopicPartition, tuple[int, int]]:
    """Assign every partition, seek to its beginning; (beginning, end) captured now."""
    bounds = await assign_topic(consumer, settings, topic, what="dead-letter topic")
    for tp, (start, _) in bounds.items():
        consumer.seek(tp, start)
    return bounds


async def _scan(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, tuple[int, int]]) -> Any:
    """Dead letters in offset order per partition, up to the captured ends (bounded)."""
    loop = asyncio.get_running_loop()
    open_tps = {tp for tp, (start, end) in ends.items() if start < end}
    last_progress = loop.time()
    while open_tps:
        batches = await consumer.getmany(*open_tps, timeout_ms=500)
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp][1]:
                    yield DeadLetter.from_record(record)
            last_progress = loop.time()
        for tp in list(open_tps):
            if await consumer.position(tp) >= ends[tp][1]:
                open_tps.discard(tp)
        if loop.time() - last_progress > STALL_AFTER_S:
            behind = {f"{tp.topic}/{tp.partition}": ends[tp][1] for tp in open_tps}
            raise FatalError(f"reading the dead-letter topic stalled; unread up to {behind}")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dlq", help="the dead-letter topic")
    sub = parser.add_subparsers(metavar="ACTION", required=True)
    cmd = sub.add_parser("replay", help="re-publish dead-lettered records to their source topic")
    cmd.add_argument("--topic", help="dead-letter topic (default: $KAFKA_DLQ_TOPIC)")
    cmd.add_argument(
        "--bootstrap-servers",
        type=bootstrap_servers_arg,
        help="brokers (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    cmd.add_argument(
        "--reason",
        action="append",
        default=[],
        help="a dlq.reason to replay (repeatable), e.g. render_failed, schema_violation",
    )
    cmd.add_argument(
        "--event-type", action="append", default=[], help="an event_type to replay (repeatable)"
    )
    cmd.add_argument("--since", type=parse_time, help="dead-lettered at or after (ISO or 2h)")
    cmd.add_argument("--until", type=parse_time, help="dead-lettered before (ISO or 30m)")
    cmd.add_argument("--to-topic", help="publish here instead of each record's source topic")
    cmd.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    cmd.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    overrides = {"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}
    loaded = load_settings(kafka=overrides)
    # stdout carries the listing and the report; logs (warnings only) go to stderr
    configure_logging(LogLevel.WARNING, loaded.service.log_format, stream=sys.stderr)
    settings = loaded.kafka
    topic = args.topic or settings.dlq_topic
    selection = ReplayFilter(
        frozenset(args.reason), frozenset(args.event_type), args.since, args.until
    )
    progress = None if args.no_progress else ProgressBar(sys.stderr)
    report = asyncio.run(
        replay(
            settings,
            topic,
            selection,
            dry_run=args.dry_run,
            to_topic=args.to_topic,
            on_match=_lister(sys.stdout) if args.dry_run else None,
            progress=progress,
        )
    )
    print_report(report, topic, dry_run=args.dry_run, out=sys.stdout)
    return 0


def _lister(out: TextIO) -> Callable[[DeadLetter, str | None], None]:
    return lambda letter, target: print(describe(letter, target), file=out)


def print_report(report: ReplayReport, topic: str, *, dry_run: bool, out: TextIO) -> None:
    reasons = ", ".join(f"{name} {count}" for name, count in report.reasons.most_common())
    done = "would replay" if dry_run else "replayed"
    count = report.matched - report.skipped - report.cut if dry_run else report.replayed
    cut = f", {report.cut} not replayable (cut to fit the dead-letter topic)" if report.cut else ""
    print(
        f"{topic}: scanned {report.scanned}, matched {report.matched}"
        f"{f' ({reasons})' if reasons else ''}, {done} {count}, "
        f"skipped {report.skipped} (no dlq.source_topic){cut}",
        file=out,
    )
