"""Building send-batch content: platform messages, device groups, limits, transfer ids."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from consumer.events import Device, Recipient
from consumer.providers.appmetrica.payload import (
    MAX_MESSAGE_BYTES,
    MessageInvalid,
    client_transfer_id,
    deliveries,
    elements_for,
    plan_batch,
    platform_messages,
)
from consumer.push import Message, Origin, PushClass, PushJob, RenderedPush


def job(
    event_id: str, devices: list[tuple[str, str]], extras: Any = None, title: str = "Заказ 12"
) -> PushJob:
    push = RenderedPush(
        rule_id="order_ready",
        message=Message(title, "Заберите до пятницы", "imshop://orders/12"),
        push_class=PushClass.TRANSACTIONAL,
        ttl_s=3600,
        extras={"appmetrica": extras} if extras is not None else {},
    )
    return PushJob(
        origin=Origin("orders", 0, 1),
        event_id=event_id,
        event_type="order.status_changed",
        recipient=Recipient(user_id="u1", devices=[Device(id_type=t, id=i) for t, i in devices]),
        push=push,
        occurred_at=dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC),
    )


def test_both_platforms_get_the_text_the_link_and_the_rule_extras() -> None:
    extras = {"android": {"channel_id": "orders", "priority": 1}, "iOS": {"sound": "default"}}
    messages = platform_messages(Message("T", "S", "imshop://x"), extras)
    assert messages == {
        "android": {
            "silent": False,
            "content": {"title": "T", "text": "S", "channel_id": "orders", "priority": 1},
            "open_action": {"deeplink": "imshop://x"},
        },
        "iOS": {
            "silent": False,
            "content": {"title": "T", "text": "S", "sound": "default"},
            "open_action": {"url": "imshop://x"},
        },
    }
    assert "open_action" not in platform_messages(Message("T", "S"), {})["iOS"]


@pytest.mark.parametrize(
    ("extras", "words"),
    [
        ({"ios": {}}, "unknown platform keys ['ios']"),
        ({"android": "loud"}, "must be an object"),
        ({"android": {"data": "я" * 2000}}, f"{MAX_MESSAGE_BYTES}-byte limit"),
    ],
)
def test_a_message_that_cannot_be_sent_is_refused_with_the_reason(
    extras: dict[str, Any], words: str
) -> None:
    with pytest.raises(MessageInvalid, match=words.replace("[", r"\[").replace("]", r"\]")):
        platform_messages(Message("T", "S"), extras)


def test_devices_are_grouped_by_id_type_five_groups_per_element() -> None:
    types = ["appmetrica_device_id", "ios_ifa", "google_aid", "android_push_token"]
    types += ["ios_push_token", "huawei_push_token", "huawei_oaid"]
    devices = [(t, f"{t}-1") for t in types] + [("ios_ifa", "ios_ifa-2"), ("ios_ifa", "ios_ifa-1")]
    elements = plan_batch([job("e1", devices)]).elements
    assert [len(e["devices"]) for e in elements] == [5, 2]
    assert elements[0]["devices"][1] == {
        "id_type": "ios_ifa",
        "id_values": ["ios_ifa-1", "ios_ifa-2"],
    }
    assert elements[0]["messages"] == elements[1]["messages"]
    assert [elements_for(n) for n in (1, 5, 6, 7)] == [1, 1, 2, 2]


def test_jobs_with_the_same_text_share_an_element_and_a_device_appears_once_per_text() -> None:
    jobs = [
        job("e1", [("android_push_token", "a"), ("ios_push_token", "i")]),
        job("e2", [("android_push_token", "a")]),
        job("e3", [("android_push_token", "a")], title="Заказ 13"),
    ]
    plan = plan_batch(jobs)
    assert [[g["id_values"] for g in e["devices"]] for e in plan.elements] == [
        [["a"], ["i"]],
        [["a"]],
    ]
    assert [j.event_id for j in plan.sent_jobs] == ["e1", "e2", "e3"]
    assert deliveries(jobs[1])[0] in deliveries(jobs[0])  # same text, same device: one delivery
    assert deliveries(jobs[2])[0] not in deliveries(jobs[0])  # another text: another delivery


def test_plan_keeps_good_texts_and_names_refused_ones() -> None:
    good = job("e1", [("android_push_token", "a")])
    bad = job("e2", [("android_push_token", "b")], {"android": {"data": "x" * 4000}})
    plan = plan_batch([good, bad])
    assert [j.event_id for j in plan.sent_jobs] == ["e1"]
    assert len(plan.elements) == 1
    assert [(jobs[0].event_id, "3968" in reason) for jobs, reason in plan.refused] == [("e2", True)]


def test_client_transfer_id_is_deterministic_63_bit_and_content_bound() -> None:
    jobs = [job("e1", [("android_push_token", "a")]), job("e2", [("ios_push_token", "b")])]
    elements = plan_batch(jobs).elements
    first = client_transfer_id(jobs, elements)
    assert first == client_transfer_id(list(reversed(jobs)), elements)
    assert 0 < first < 2**63
    assert client_transfer_id(jobs[:1], elements) != first
    other = plan_batch([job("e1", [("android_push_token", "z")])]).elements
    assert client_transfer_id(jobs, other) != first


def test_a_replayed_record_gets_a_new_client_transfer_id() -> None:
    # A dead letter replayed after a failed transfer is the same event in a new record:
    # with the failed transfer's id, AppMetrica would refuse it as a duplicate (409).
    original = [job("e1", [("android_push_token", "a")])]
    elements = plan_batch(original).elements
    replayed = [dataclasses.replace(original[0], origin=Origin("orders", 0, 99))]
    read_again = [dataclasses.replace(original[0])]  # after a restart: the same record

    assert client_transfer_id(replayed, elements) != client_transfer_id(original, elements)
    assert client_transfer_id(read_again, elements) == client_transfer_id(original, elements)
