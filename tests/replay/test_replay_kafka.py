"""Dead-letter replay on the real broker: what goes back, byte for byte, and what does not."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import sys
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from consumer.cli import build_parser
from consumer.clock import FakeClock
from consumer.errors import FatalError
from consumer.kafka.deadletter import DeadLetterWriter, build_producer
from consumer.metrics import Metrics
from consumer.push import Origin
from consumer.replay.command import print_report, replay
from consumer.replay.progress import ProgressBar
from consumer.replay.select import MARKER, DeadLetter, ReplayFilter, describe, parse_time
from consumer.settings import KafkaSettings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

PARTITIONS = {"orders": 3, "bonus": 3, "dlq": 2}  # by topic prefix
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
# The dead letters' dlq.time; their record timestamps are the real now, long after.
DEAD_LETTERED_AT = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
INVALID = frozenset({"schema_violation", "invalid_json"})


def event(event_type: str, event_id: str) -> bytes:
    return json.dumps({"event_id": event_id, "event_type": event_type}).encode()


async def dead_letter(bootstrap: str, dlq: str, letters: list[tuple[Origin, str]]) -> None:
    """Write each (origin, reason) through the service's own DeadLetterWriter."""
    producer = build_producer(KafkaSettings(bootstrap_servers=bootstrap))
    await producer.start()
    try:
        writer = DeadLetterWriter(producer, dlq, Metrics(), clock=FakeClock(DEAD_LETTERED_AT))
        for origin, reason in letters:
            await writer.write(origin, reason=reason, error_class="X", message="why", event_id=None)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Everything in ``topic`` up to its current end (bounded by the end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS[topic.split("-")[0]])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert loop.time() < deadline, f"reading {topic} took too long"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


@pytest.fixture
async def setup(kafka_bootstrap: str, topic_factory: Any) -> dict[str, str]:
    orders, bonus, dlq = [
        await topic_factory(prefix=prefix, partitions=count) for prefix, count in PARTITIONS.items()
    ]
    origins = [
        (
            Origin(
                orders, 1, 10, b"A-1", event("order.status_changed", "o-1"), (("trace", b"t1"),), 1
            ),
            "schema_violation",
        ),
        (
            Origin(orders, 2, 11, b"A-2", event("order.status_changed", "o-2"), (), 2),
            "render_failed",
        ),
        (Origin(bonus, 0, 12, None, b"\xff not json", (("trace", b"t3"),), 3), "invalid_json"),
        (
            Origin(
                bonus, 1, 13, b"u-4", event("bonus.accrued", "b-4"), (("dlq.reason", b"old"),), 4
            ),
            "schema_violation",
        ),
    ]
    await dead_letter(kafka_bootstrap, dlq, origins)
    # A record in the dead-letter topic that names no source topic cannot be replayed.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(dlq, b"orphan", headers=[("dlq.reason", b"invalid_json")])
    finally:
        await producer.stop()
    return {"orders": orders, "bonus": bonus, "dlq": dlq}


async def test_dry_run_lists_matches_and_publishes_nothing(
    kafka_bootstrap: str, setup: dict[str, str]
) -> None:
    listed: list[tuple[DeadLetter, str | None]] = []
    report = await replay(
        KafkaSettings(bootstrap_servers=kafka_bootstrap),
        setup["dlq"],
        ReplayFilter(reasons=INVALID),
        dry_run=True,
        on_match=lambda letter, target: listed.append((letter, target)),
    )

    assert (report.scanned, report.matched, report.replayed, report.skipped) == (5, 4, 0, 1)
    assert sorted(target or "-" for _, target in listed) == sorted(
        ["-", setup["orders"], setup["bonus"], setup["bonus"]]
    )
    assert await read_topic(kafka_bootstrap, setup["orders"]) == []
    assert await read_topic(kafka_bootstrap, setup["bonus"]) == []


async def test_replay_sends_the_original_record_back_with_a_marker(
    kafka_bootstrap: str, setup: dict[str, str]
) -> None:
    report = await replay(
        KafkaSettings(bootstrap_servers=kafka_bootstrap),
        setup["dlq"],
        ReplayFilter(
            reasons=frozenset({"schema_violation"}), event_types=frozenset({"order.status_changed"})
        ),
    )

    assert (report.matched, report.replayed, report.skipped) == (1, 1, 0)
    (record,) = await read_topic(kafka_bootstrap, setup["orders"])
    assert record.key == b"A-1"
    assert record.value == event("order.status_changed", "o-1")
    (letter,) = [r for r in await read_topic(kafka_bootstrap, setup["dlq"]) if r.key == b"A-1"]
    assert list(record.headers) == [
        ("trace", b"t1"),
        (MARKER, f"{setup['dlq']}/{letter.partition}@{letter.offset}".encode()),
    ]
    assert await read_topic(kafka_bootstrap, setup["bonus"]) == [], "other filters excluded"


async def test_replay_of_a_bonus_drops_every_old_dlq_header_and_keeps_bytes(
    kafka_bootstrap: str, setup: dict[str, str]
) -> None:
    report = await replay(
        KafkaSettings(bootstrap_servers=kafka_bootstrap),
        setup["dlq"],
        ReplayFilter(reasons=INVALID),
    )

    assert (report.matched, report.replayed, report.skipped) == (4, 3, 1)
    bonus = {r.key: r for r in await read_topic(kafka_bootstrap, setup["bonus"])}
    assert set(bonus) == {None, b"u-4"}
    assert bonus[None].value == b"\xff not json"
    assert [name for name, _ in bonus[None].headers] == ["trace", MARKER]
    assert [name for name, _ in bonus[b"u-4"].headers] == [MARKER]
    orders = await read_topic(kafka_bootstrap, setup["orders"])
    assert [r.key for r in orders] == [b"A-1"], "render_failed was not selected"


async def test_time_filter_uses_the_dead_letter_time(
    kafka_bootstrap: str, setup: dict[str, str]
) -> None:
    """dlq.time says January; the records were written now. Only the orphan has no dlq.time."""
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    hour = dt.timedelta(hours=1)

    async def matched(selection: ReplayFilter) -> int:
        return (await replay(settings, setup["dlq"], selection, dry_run=True)).matched

    assert (
        await matched(ReplayFilter(since=DEAD_LETTERED_AT - hour, until=DEAD_LETTERED_AT + hour))
        == 4
    )
    assert await matched(ReplayFilter(since=DEAD_LETTERED_AT + hour)) == 1, (
        "the orphan, by timestamp"
    )
    assert await matched(ReplayFilter(until=DEAD_LETTERED_AT - hour)) == 0


async def test_replaying_into_the_dead_letter_topic_itself_ends(
    kafka_bootstrap: str, setup: dict[str, str]
) -> None:
    """Records that land in the DLQ during the replay lie past the captured ends."""
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    progress_out = io.StringIO()

    report = await replay(
        settings,
        setup["dlq"],
        ReplayFilter(),
        to_topic=setup["dlq"],
        progress=ProgressBar(progress_out, interactive=False),
    )

    assert (report.scanned, report.replayed) == (5, 5)
    assert len(await read_topic(kafka_bootstrap, setup["dlq"])) == 10
    bars = [f"[{'#' * round(6 * n)}{'.' * (30 - round(6 * n))}] {n}/5" for n in range(6)]
    assert progress_out.getvalue().splitlines() == [
        bars[0],
        *(f"{bars[n]}  matched {n}" for n in range(2, 6)),
    ], "one line per quarter, the last one once"


async def test_the_command_line_dry_run(kafka_bootstrap: str, setup: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer",
        "dlq",
        "replay",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        setup["dlq"],
        "--reason",
        "render_failed",
        "--since",
        "2026-01-01T08:00Z",  # an hour before DEAD_LETTERED_AT
        "--dry-run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert len(lines) == 2, lines
    assert "reason=render_failed" in lines[0]
    assert "event_type=order.status_changed" in lines[0]
    assert f"-> {setup['orders']}" in lines[0]
    assert lines[1] == (
        f"{setup['dlq']}: scanned 5, matched 1 (render_failed 1), would replay 1, "
        "skipped 0 (no dlq.source_topic)"
    )
    assert await read_topic(kafka_bootstrap, setup["orders"]) == []


async def test_a_dead_letter_cut_to_fit_is_not_replayed(
    kafka_bootstrap: str, setup: dict[str, str]
) -> None:
    big = Origin(setup["orders"], 0, 20, b"A-big", b"{" + b" " * 2_000_000 + b"}", (), 5)
    await dead_letter(kafka_bootstrap, setup["dlq"], [(big, "too_large")])
    listed: list[str] = []

    report = await replay(
        KafkaSettings(bootstrap_servers=kafka_bootstrap),
        setup["dlq"],
        ReplayFilter(reasons=frozenset({"too_large"})),
        on_match=lambda letter, target: listed.append(describe(letter, target)),
    )

    assert (report.matched, report.replayed, report.cut, report.skipped) == (1, 0, 1, 0)
    assert "SKIPPED (cut to fit the dead-letter topic" in listed[0]
    assert await read_topic(kafka_bootstrap, setup["orders"]) == []
    out = io.StringIO()
    print_report(report, setup["dlq"], dry_run=False, out=out)
    assert "1 not replayable (cut to fit the dead-letter topic)" in out.getvalue()


async def test_a_missing_topic_fails_clearly_and_is_not_created(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, unique_name: Any
) -> None:
    """The broker auto-creates topics: a mistyped --topic must not leave one behind."""
    missing = unique_name("dlq-typo")

    with pytest.raises(FatalError, match=f"dead-letter topic '{missing}' does not exist"):
        await replay(
            KafkaSettings(bootstrap_servers=kafka_bootstrap), missing, ReplayFilter(), dry_run=True
        )

    assert missing not in await kafka_admin.list_topics()


async def test_an_unreachable_broker_is_one_line_and_exit_2() -> None:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-W", "default", "-m", "consumer", "dlq", "replay"],
        *["--bootstrap-servers", "127.0.0.1:1", "--topic", "dead-letter", "--dry-run"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 2
    assert stdout == b""
    (line,) = stderr.decode().splitlines()
    assert line.startswith("error: cannot reach Kafka at 127.0.0.1:1: "), line


def test_times_are_iso_or_ages() -> None:
    assert parse_time("2h", now=NOW) == NOW - dt.timedelta(hours=2)
    assert parse_time("30m", now=NOW) == NOW - dt.timedelta(minutes=30)
    assert parse_time("2026-11-22T10:00") == dt.datetime(2026, 11, 22, 10, tzinfo=dt.UTC)
    assert parse_time("2026-11-22T10:00+03:00").utcoffset() == dt.timedelta(hours=3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dlq", "replay", "--since", "yesterday"])
