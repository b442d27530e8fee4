"""Building AppMetrica `send-batch` bodies, within the documented limits.

A push's *text* is its message plus the rule's AppMetrica extras: pushes with
equal texts share one batch element (one message to all their devices). A
recipient, as the dispatcher counts it, is one delivery, ``"{text}|{id_type}:{id}"``:
a device that gets two different texts of one request appears in two elements,
and AppMetrica's 250,000-device cap counts both.

Every element carries both platform messages: the API fails a transfer whose
device id type implies a platform without a message ("Identifier type
google_aid requires defined message for platform android"), and
``appmetrica_device_id`` may be either platform. An element holds at most five
device groups (one per id type), so a text whose devices span more id types
takes two elements.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consumer.push import Message, PushJob

MAX_MESSAGE_BYTES = 3968
MAX_DEVICE_GROUPS = 5
ANDROID = "android"
IOS = "iOS"
PLATFORMS = (ANDROID, IOS)
EXTRAS_KEY = "appmetrica"


class MessageInvalid(ValueError):
    """One text cannot be sent (too large, bad extras)."""


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """The batch elements to send, the jobs they carry, and the jobs refused before sending."""

    elements: tuple[dict[str, Any], ...]
    sent_jobs: tuple[PushJob, ...]
    refused: tuple[tuple[tuple[PushJob, ...], str], ...]


def job_extras(job: PushJob) -> Mapping[str, Any]:
    extras = job.push.extras.get(EXTRAS_KEY, {})
    return extras if isinstance(extras, Mapping) else {"_invalid": extras}


def extras_key(job: PushJob) -> str:
    """A stable text form of the job's AppMetrica extras."""
    return json.dumps(job_extras(job), sort_keys=True, ensure_ascii=False, default=str)


def text_key(job: PushJob) -> str:
    """Equal for pushes that share a batch element (same message, same extras).

    Used in-process only (recipient ids, batch counting), so Python's hash does.
    """
    return format(hash((job.message, extras_key(job))) & 0xFFFF_FFFF_FFFF_FFFF, "016x")


def deliveries(job: PushJob) -> tuple[str, ...]:
    """The job's recipients for the dispatcher: its text to each of its devices, once."""
    text = text_key(job)
    return tuple(dict.fromkeys(f"{text}|{d.id_type}:{d.id}" for d in job.recipient.devices))


def elements_for(id_types: int) -> int:
    """Batch elements a text takes when its devices span ``id_types`` id types."""
    return max(1, -(-id_types // MAX_DEVICE_GROUPS))


def message_bytes(platform_message: Mapping[str, Any]) -> int:
    return len(json.dumps(platform_message, ensure_ascii=False).encode("utf-8"))


def platform_messages(message: Message, extras: Mapping[str, Any]) -> dict[str, Any]:
    """The `messages` object: title/summary/deeplink plus the rule's content extras."""
    unknown = sorted(set(extras) - set(PLATFORMS))
    if unknown:
        raise MessageInvalid(f"appmetrica extras have unknown platform keys {unknown}")
    built: dict[str, Any] = {}
    for platform in PLATFORMS:
        content_extras = extras.get(platform, {})
        if not isinstance(content_extras, Mapping):
            raise MessageInvalid(f"appmetrica extras for {platform} must be an object")
        content = {"title": message.title, "text": message.summary, **content_extras}
        entry: dict[str, Any] = {"silent": False, "content": content}
        if message.deeplink:
            link_key = "deeplink" if platform == ANDROID else "url"
            entry["open_action"] = {link_key: message.deeplink}
        size = message_bytes(entry)
        if size > MAX_MESSAGE_BYTES:
            raise MessageInvalid(
                f"the {platform} message is {size} bytes, more than AppMetrica's "
                f"{MAX_MESSAGE_BYTES}-byte limit"
            )
        built[platform] = entry
    return built


def device_groups(jobs: Iterable[PushJob]) -> list[dict[str, Any]]:
    """The jobs' devices grouped by id type, in first-seen order, each device once."""
    grouped: dict[str, dict[str, None]] = {}
    for job in jobs:
        for device in job.recipient.devices:
            grouped.setdefault(device.id_type, {})[device.id] = None
    return [{"id_type": t, "id_values": list(ids)} for t, ids in grouped.items()]


def text_elements(jobs: Sequence[PushJob]) -> list[dict[str, Any]]:
    """The batch elements of one text: its devices, five device groups per element."""
    messages = platform_messages(jobs[0].message, job_extras(jobs[0]))
    groups = device_groups(jobs)
    return [
        {"messages": messages, "devices": groups[i : i + MAX_DEVICE_GROUPS]}
        for i in range(0, len(groups), MAX_DEVICE_GROUPS)
    ]


def plan_batch(jobs: Iterable[PushJob]) -> BatchPlan:
    """One request's elements: jobs grouped by text (first-seen order); a text that
    cannot be sent is refused alone."""
    texts: dict[tuple[Message, str], list[PushJob]] = {}
    for job in jobs:
        texts.setdefault((job.message, extras_key(job)), []).append(job)
    elements: list[dict[str, Any]] = []
    sent_jobs: list[PushJob] = []
    refused: list[tuple[tuple[PushJob, ...], str]] = []
    for same_text in texts.values():
        try:
            built = text_elements(same_text)
        except MessageInvalid as exc:
            refused.append((tuple(same_text), str(exc)))
            continue
        elements.extend(built)
        sent_jobs.extend(same_text)
    return BatchPlan(tuple(elements), tuple(sent_jobs), tuple(refused))


def count_devices(elements: Iterable[Mapping[str, Any]]) -> int:
    return sum(len(group["id_values"]) for element in elements for group in element["devices"])


def client_transfer_id(jobs: Iterable[PushJob], elements: Iterable[Mapping[str, Any]]) -> int:
    """A deterministic, non-zero 63-bit id for this exact content and set of records.

    The same logical send (a retry with the same jobs, the same records read
    again after a restart) gets the same id, so AppMetrica's per-group uniqueness
    of `client_transfer_id` refuses a duplicate. A record is its event at its
    place in Kafka: a dead letter replayed after a failed transfer is a new record,
    so its send is new too (the failed transfer's id would be refused as a duplicate).
    """
    records = {(j.event_id, j.origin.topic, j.origin.partition, j.origin.offset) for j in jobs}
    canonical = json.dumps(
        {
            "events": sorted(records),
            "batch": sorted(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in elements),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1) or 1
