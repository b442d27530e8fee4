"""Building AppMetrica `send-batch` bodies from envelopes, within the documented limits.

A recipient of this provider is one device, spelled ``"{id_type}:{id}"`` so the
dispatcher can count and de-duplicate devices like any other recipient id.
Every batch element carries both platform messages: the API fails a transfer
whose device id type implies a platform without a message ("Identifier type
google_aid requires defined message for platform android"), and
``appmetrica_device_id`` may be either platform.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consumer.providers.base import Envelope
from consumer.push import Message, PushJob

MAX_MESSAGE_BYTES = 3968
MAX_DEVICE_GROUPS = 5
ANDROID = "android"
IOS = "iOS"
PLATFORMS = (ANDROID, IOS)
EXTRAS_KEY = "appmetrica"

# Which platform message a device id type needs; None means the device's own platform.
PLATFORM_OF_ID_TYPE: dict[str, str | None] = {
    "appmetrica_device_id": None,
    "ios_ifa": IOS,
    "ios_push_token": IOS,
    "google_aid": ANDROID,
    "android_push_token": ANDROID,
    "huawei_push_token": ANDROID,
    "huawei_oaid": ANDROID,
}


class MessageInvalid(ValueError):
    """One envelope's message cannot be sent (too large, bad extras)."""


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """The batch elements to send and the envelopes refused before sending."""

    elements: tuple[dict[str, Any], ...]
    sent_jobs: tuple[PushJob, ...]
    refused: tuple[tuple[Envelope, str], ...]


def device_recipient(id_type: str, device_id: str) -> str:
    return f"{id_type}:{device_id}"


def job_extras(job: PushJob) -> Mapping[str, Any]:
    extras = job.push.extras.get(EXTRAS_KEY, {})
    return extras if isinstance(extras, Mapping) else {"_invalid": extras}


def extras_key(job: PushJob) -> str:
    """A stable text form of the job's AppMetrica extras (part of the coalescing key)."""
    return json.dumps(job_extras(job), sort_keys=True, ensure_ascii=False, default=str)


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


def device_groups(recipients: Iterable[str]) -> list[dict[str, Any]]:
    """Devices grouped by id type, in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for recipient in recipients:
        id_type, _, device_id = recipient.partition(":")
        values = grouped.setdefault(id_type, [])
        if device_id not in values:
            values.append(device_id)
    return [{"id_type": t, "id_values": ids} for t, ids in grouped.items() if ids]


def envelope_elements(envelope: Envelope) -> list[dict[str, Any]]:
    """One batch element per 5 device groups (the documented maximum per element)."""
    messages = platform_messages(envelope.message, job_extras(envelope.jobs[0]))
    groups = device_groups(envelope.recipients)
    return [
        {"messages": messages, "devices": groups[i : i + MAX_DEVICE_GROUPS]}
        for i in range(0, len(groups), MAX_DEVICE_GROUPS)
    ]


def plan_batch(envelopes: Sequence[Envelope]) -> BatchPlan:
    elements: list[dict[str, Any]] = []
    sent_jobs: list[PushJob] = []
    refused: list[tuple[Envelope, str]] = []
    for envelope in envelopes:
        try:
            built = envelope_elements(envelope)
        except MessageInvalid as exc:
            refused.append((envelope, str(exc)))
            continue
        elements.extend(built)
        sent_jobs.extend(envelope.jobs)
    return BatchPlan(tuple(elements), tuple(sent_jobs), tuple(refused))


def count_devices(elements: Iterable[Mapping[str, Any]]) -> int:
    return sum(len(group["id_values"]) for element in elements for group in element["devices"])


def client_transfer_id(jobs: Iterable[PushJob], elements: Iterable[Mapping[str, Any]]) -> int:
    """A deterministic, non-zero 63-bit id for this exact content and set of events.

    The same logical send (a retry with the same jobs) gets the same id, so
    AppMetrica's per-group uniqueness of `client_transfer_id` refuses a duplicate.
    """
    canonical = json.dumps(
        {
            "events": sorted({job.event_id for job in jobs}),
            "batch": sorted(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in elements),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1) or 1
