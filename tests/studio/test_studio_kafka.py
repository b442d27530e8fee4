"""The studio against a real Kafka topic: the last N records, on the page and in the diff."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from playwright.async_api import expect
from studio_support import FIXTURE, ServePreview, edit

from consumer.cli import main
from consumer.errors import FatalError
from consumer.settings import KafkaSettings, Settings
from consumer.studio.diff import DiffOptions, report_lines, run_diff
from consumer.studio.tail import read_last

pytestmark = pytest.mark.kafka

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z, in ms


def order(number: int, status: str = "created") -> bytes:
    event = {
        "event_id": f"e-{number}",
        "event_type": "order.status_changed",
        "occurred_at": "2026-11-25T12:00:00+03:00",
        "recipient": {"user_id": f"u-{number}"},
        "order": {"id": f"o-{number}", "number": str(number), "status": status},
    }
    return json.dumps(event).encode()


async def produce(bootstrap: str, topic: str, values: list[tuple[int, bytes]]) -> None:
    """Each value to the given partition, with timestamps one second apart in list order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for index, (partition, value) in enumerate(values):
            await producer.send_and_wait(
                topic, value, partition=partition, timestamp_ms=T0 + index * 1000
            )
    finally:
        await producer.stop()


async def groups(admin: AIOKafkaAdminClient) -> set[str]:
    return {group for group, _ in await admin.list_consumer_groups()}


async def test_the_last_records_of_every_partition_newest_last_without_a_group(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, topic_factory: Any
) -> None:
    topic = await topic_factory(prefix="studio", partitions=3)
    await produce(kafka_bootstrap, topic, [(n % 3, order(n)) for n in range(12)])
    before = await groups(kafka_admin)
    tail = await read_last(KafkaSettings(bootstrap_servers=kafka_bootstrap), topic, 5)
    assert [json.loads(r.value or b"")["event_id"] for r in tail.records] == [
        "e-7",
        "e-8",
        "e-9",
        "e-10",
        "e-11",
    ]
    assert tail.unfinished == []
    assert [(r.partition, r.offset) for r in tail.records[-2:]] == [(1, 3), (2, 3)]
    everything = await read_last(KafkaSettings(bootstrap_servers=kafka_bootstrap), topic, 50)
    assert len(everything.records) == 12
    assert await groups(kafka_admin) == before  # read without joining a group


async def test_a_missing_topic_is_named_and_not_created(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, unique_name: Any
) -> None:
    topic = unique_name("studio-missing")
    with pytest.raises(FatalError, match=f"the topic '{topic}' does not exist"):
        await read_last(KafkaSettings(bootstrap_servers=kafka_bootstrap), topic, 5)
    assert topic not in await kafka_admin.list_topics()


async def test_recent_events_render_on_the_page_with_the_files_as_they_are_now(
    kafka_bootstrap: str,
    topic_factory: Any,
    mappings: Path,
    serve_preview: ServePreview,
    page: Any,
) -> None:
    topic = await topic_factory(prefix="studio-page", partitions=2)
    await produce(
        kafka_bootstrap,
        topic,
        [(0, order(1)), (1, order(2, "confirmed")), (0, b"{not json"), (1, order(3, "lost"))],
    )
    async with serve_preview(mappings, bootstrap=kafka_bootstrap) as (url, _):
        await page.goto(url)
        await page.wait_for_selector(".rule")
        await page.fill("#recent-topic", topic)
        await page.fill("#recent-last", "10")
        await page.click("#recent-load")
        records = page.locator("#recent-result .record")
        await records.first.wait_for()
        assert await page.locator("#recent-status").inner_text() == "4 records"
        assert await records.locator("h3").all_inner_texts() == [
            f"{topic}/1@1",
            f"{topic}/0@1",
            f"{topic}/1@0",
            f"{topic}/0@0",
        ]
        lost, broken, confirmed, created = [records.nth(i) for i in range(4)]
        assert "No push: the conditions of every order.status_changed rule are false" in (
            await lost.inner_text()
        )
        assert "The event is not valid" in await broken.locator(".error-box").inner_text()
        title = created.locator(".phone.ios > .notification .title")
        assert await title.inner_text() == "Заказ №1 оформлен"
        assert await confirmed.locator(".phone.ios .title").first.inner_text() == (
            "Заказ №2 подтверждён"
        )

        edit(mappings / "orders.yaml", "}} оформлен", "}} принят")
        # The same record, rendered again with the saved file (the page is not reloaded).
        await expect(title).to_have_text("Заказ №1 принят")


async def test_the_diff_of_a_topics_last_records(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = await topic_factory(prefix="studio-diff", partitions=1)
    await produce(
        kafka_bootstrap,
        topic,
        [(0, order(n, "created" if n % 2 else "confirmed")) for n in range(6)],
    )
    shipped = tmp_path / "shipped"
    edited = tmp_path / "edited"
    shutil.copytree(FIXTURE, shipped)
    shutil.copytree(FIXTURE, edited)
    edit(edited / "orders.yaml", "}} оформлен", "}} принят")
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap))
    options = DiffOptions(edited=edited, against=str(shipped), topic=topic, last=4)
    report = await run_diff(options, settings)
    assert report.source == f"the last 4 records of {topic}"
    assert [c.label for c in report.changed] == [f"{topic}/0@3", f"{topic}/0@5"]
    assert [(c.before["title"], c.after["title"]) for c in report.changed] == [
        ("Заказ №3 оформлен", "Заказ №3 принят"),
        ("Заказ №5 оформлен", "Заказ №5 принят"),
    ]
    assert report.unchanged == 2
    assert f"Events:  the last 4 records of {topic}" in report_lines(report)


async def test_the_diff_command_reads_a_topic(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await topic_factory(prefix="studio-diff-cli", partitions=1)
    await produce(kafka_bootstrap, topic, [(0, order(1)), (0, order(2, "confirmed"))])
    edited = tmp_path / "edited"
    shutil.copytree(FIXTURE, edited)
    edit(edited / "orders.yaml", "}} подтверждён", "}} подтверждён!")
    args = ["mappings", "diff", "--against", str(FIXTURE), "--from-topic", topic]
    args += ["--last", "1", "--bootstrap-servers", kafka_bootstrap, str(edited)]
    code = await asyncio.to_thread(main, args)  # the command runs its own event loop
    out = capsys.readouterr().out
    assert code == 0
    assert f"  1. {topic}/0@1\n       title        «Заказ №2 подтверждён»\n" in out
    assert "→   «Заказ №2 подтверждён!»" in out
