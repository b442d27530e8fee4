"""Sample events: a mix that reaches both topics, fresh ids per run, and a report that is true."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest
from testkit import read_records

from consumer.local.samples import SampleRecord, describe, publish, sample_events, to_record
from consumer.settings import load_settings


@pytest.mark.parametrize("count", [3, 5, 20])
def test_a_few_events_already_reach_both_topics(count: int) -> None:
    records = [to_record(event) for event in sample_events(count)]

    topics = Counter(record.topic for record in records)
    assert set(topics) == {"orders", "bonus"}
    assert topics["orders"] >= topics["bonus"], "two in three events are order traffic"


def test_each_order_walks_through_its_statuses_in_order() -> None:
    versions: dict[str, list[int]] = {}
    for event in sample_events(200, seed=3):
        if event["event_type"] == "order.status_changed":
            versions.setdefault(event["order"]["id"], []).append(event["order"]["version"])

    assert len(versions) > 10
    for order, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), order


def test_every_run_has_fresh_ids_and_orders_unless_seeded() -> None:
    first, second = list(sample_events(50)), list(sample_events(50))

    assert not {e["event_id"] for e in first} & {e["event_id"] for e in second}
    assert not _order_ids(first) & _order_ids(second), "a later run is not superseded"
    at = dt.datetime(2026, 11, 22, 10, 15, tzinfo=dt.UTC)
    assert list(sample_events(50, seed=4, now=at)) == list(sample_events(50, seed=4, now=at))
    assert len({e["event_id"] for e in first}) == 50, "ids are unique within a run"


@pytest.mark.kafka
@pytest.mark.timeout(60)
async def test_what_produce_reports_is_what_the_topics_received(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    orders, bonus = await topic_factory(prefix="orders"), await topic_factory(prefix="bonus")
    records = [
        to_record(event, orders_topic=orders, bonus_topic=bonus) for event in sample_events(11)
    ]
    kafka = load_settings(kafka={"bootstrap_servers": kafka_bootstrap}).kafka

    await publish(kafka, [(r.topic, r.key, r.value) for r in records])

    read = await read_records(kafka_bootstrap, [orders, bonus], len(records), timeout_s=30)
    received = [_as_sample(record) for record in read]
    assert describe(received) == describe(records)
    assert sorted(r.value for r in received) == sorted(r.value for r in records)


def _order_ids(events: list[dict[str, Any]]) -> set[str]:
    return {e["order"]["id"] for e in events if "order" in e}


def _as_sample(record: Any) -> SampleRecord:
    return SampleRecord(record.topic, record.key, record.value, json.loads(record.value))
