"""Event contract v1: the JSON the shop's backend publishes, as pydantic models.

``parse_event(raw)`` turns one Kafka record value into a typed event, or raises
``InvalidEvent`` saying what is wrong and where (field path, expected, got).
Unknown extra fields are kept on every model, so templates can use them.

Limits beyond the record size, so odd input gets a precise answer instead of a
failure further down the line: JSON nested more than ``MAX_NESTING`` levels below
the top object (``too_deeply_nested``, the fast parser's own limit), text with a
lone surrogate such as ``"\\ud800"`` (``invalid_unicode``: valid JSON, but not
text any push or log can carry), amounts of ``AMOUNT_MAX_DIGITS`` digits or more
before the point and integers beyond 64 bits (``schema_violation``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sys
from collections.abc import Collection, Iterator
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from consumer.errors import InvalidEvent

# pydantic's JSON parser refuses deeper nesting; the slower path refuses it too, so
# an event is accepted or not whichever path reads it.
MAX_NESTING = 200
# Money and points: under a quadrillion, so the templates' filters (which round
# within 28 significant digits) never meet a number they cannot format.
AMOUNT_MAX_DIGITS = 15
_INT64_MAX = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def _bounded_amount(value: Decimal) -> Decimal:
    if abs(value) >= Decimal(10) ** AMOUNT_MAX_DIGITS:
        raise ValueError(
            f"an amount must have fewer than {AMOUNT_MAX_DIGITS} digits before the point"
        )
    return value


Amount = Annotated[Decimal, AfterValidator(_bounded_amount)]

DeviceIdType = Literal[
    "appmetrica_device_id",
    "ios_ifa",
    "google_aid",
    "android_push_token",
    "ios_push_token",
    "huawei_push_token",
    "huawei_oaid",
]


class _Open(BaseModel):
    """A contract object that keeps unknown fields (visible to templates)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Device(_Open):
    id_type: DeviceIdType
    id: str = Field(min_length=1)


class Recipient(_Open):
    user_id: str | None = Field(None, min_length=1)
    install_id: str | None = Field(None, min_length=1)
    devices: list[Device] = Field(default_factory=list)

    @model_validator(mode="after")
    def _needs_an_id(self) -> Recipient:
        if self.user_id is None and self.install_id is None:
            raise ValueError("a recipient needs `user_id` or `install_id`")
        return self

    @property
    def push_id(self) -> str:
        """The id IMSHOP takes in `userIds`: the customer id, else the install id."""
        return self.user_id or self.install_id or ""


class Money(_Open):
    amount: Amount
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class Delivery(_Open):
    method: str | None = None
    eta: AwareDatetime | None = None
    date: dt.date | None = None
    pickup_point: str | None = None
    tracking_url: str | None = None


class Order(_Open):
    id: str = Field(min_length=1)
    status: str = Field(min_length=1)
    number: str | None = None
    previous_status: str | None = None
    version: int | None = Field(None, ge=0, le=_INT64_MAX)
    total: Money | None = None
    items_count: int | None = Field(None, ge=0, le=_INT64_MAX)
    delivery: Delivery | None = None
    # What the customer still pays on receipt (cash or card to the courier);
    # absent or zero when prepaid. `total` is the order's price, not a debt.
    to_pay: Money | None = None


class Bonus(_Open):
    amount: Amount
    balance: Amount | None = None
    expires_at: AwareDatetime | dt.date | None = None
    order_id: str | None = None
    reason: str | None = None


class BaseEvent(_Open):
    event_id: str = Field(min_length=1)
    event_type: str
    occurred_at: AwareDatetime
    recipient: Recipient
    locale: str = "ru"
    timezone: str = "Europe/Moscow"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @property
    def tzinfo(self) -> ZoneInfo:
        # Not a cached_property: every event is a new object, so it would never hit,
        # and its first access (a lock, a write into the frozen model) cost ~3 us.
        return zone_named(self.timezone)

    def template_context(self) -> dict[str, Any]:
        """The event as plain data for templates, extra fields included."""
        return self.model_dump(mode="python")


@functools.lru_cache(maxsize=64)
def zone_named(name: str) -> ZoneInfo:
    """The zone of an IANA name (cached: an event asks for it at every render)."""
    return ZoneInfo(name)


class OrderStatusChanged(BaseEvent):
    event_type: Literal["order.status_changed"]
    order: Order


class BonusAccrued(BaseEvent):
    event_type: Literal["bonus.accrued"]
    bonus: Bonus


class BonusRedeemed(BaseEvent):
    event_type: Literal["bonus.redeemed"]
    bonus: Bonus


class _ExpiringBonus(Bonus):
    expires_at: AwareDatetime | dt.date


class BonusExpiring(BaseEvent):
    event_type: Literal["bonus.expiring"]
    bonus: _ExpiringBonus


class GenericEvent(BaseEvent):
    """An event type the contract does not know but a mapping declares."""


Event = Annotated[
    OrderStatusChanged | BonusAccrued | BonusRedeemed | BonusExpiring,
    Field(discriminator="event_type"),
]

EVENT_MODELS: dict[str, type[BaseEvent]] = {
    "order.status_changed": OrderStatusChanged,
    "bonus.accrued": BonusAccrued,
    "bonus.redeemed": BonusRedeemed,
    "bonus.expiring": BonusExpiring,
}

_EVENT_ADAPTER: TypeAdapter[BaseEvent] = TypeAdapter(Event)


def parse_event(
    raw: bytes | None, *, max_bytes: int, extra_types: Collection[str] = ()
) -> BaseEvent:
    """Validate one record value against contract v1.

    ``extra_types`` are event types declared by mappings beyond the built-in ones;
    they are validated for the common fields only.
    """
    if raw is None:
        raise InvalidEvent("empty_record", "the record has no value (a tombstone)")
    if len(raw) > max_bytes:
        raise InvalidEvent(
            "too_large", f"the record is {len(raw)} bytes, more than the limit of {max_bytes}"
        )
    try:
        return _EVENT_ADAPTER.validate_json(raw)
    except ValidationError:
        pass  # the fast path failed: find out exactly why, step by step
    data = _decode_object(raw)
    _check_text_and_depth(data)
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    event_type = data.get("event_type")
    model = EVENT_MODELS.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        if isinstance(event_type, str) and event_type in extra_types:
            model = GenericEvent
        else:
            raise _unknown_type(event_type, extra_types, event_id)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc, event_id) from None


def _decode_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            "invalid_utf8", f"the record is not UTF-8: byte {exc.start} is {raw[exc.start]:#04x}"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(
            "invalid_json",
            f"the record is not JSON: {exc}",  # "<what>: line L column C (char N)"
        ) from None
    except ValueError:  # the only other one: an integer longer than Python converts
        raise InvalidEvent(
            "invalid_json",
            f"the record has an integer of more than {sys.get_int_max_str_digits()} digits",
        ) from None
    except RecursionError:
        raise InvalidEvent(
            "too_deeply_nested", f"the JSON is nested more than {MAX_NESTING} levels deep"
        ) from None
    if not isinstance(data, dict):
        raise InvalidEvent(
            "not_an_object", f"expected a JSON object, got {type(data).__name__} {_show(data)}"
        )
    return data


def _check_text_and_depth(data: dict[str, Any]) -> None:
    """Refuse lone surrogates (JSON can escape them, UTF-8 cannot carry them) and
    nesting deeper than the fast path takes."""
    for path, value, depth in _walk(data):
        if depth > MAX_NESTING:
            top = path.split(".", 1)[0]
            raise InvalidEvent(
                "too_deeply_nested",
                f"{top}: nested more than {MAX_NESTING} levels deep",
                path=top,
            )
        if isinstance(value, str) and not value.isascii() and (bad := _SURROGATE.search(value)):
            where = _printable(path) or "(event)"
            raise InvalidEvent(
                "invalid_unicode",
                f"{where}: the text has a lone surrogate \\u{ord(bad.group()):04x}, which is "
                "not Unicode text (send the character itself, or both halves of its pair)",
                path=where,
            )


def _walk(data: dict[str, Any]) -> Iterator[tuple[str, object, int]]:
    """(path, value, depth below the top object) for every key and value, without
    recursion: the depth is what is being checked."""
    stack: list[tuple[str, object, int]] = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        yield path, value, depth
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                yield where, key, depth  # a key is text too
                stack.append((where, item, depth + 1))
        elif isinstance(value, list):
            stack.extend(
                (f"{path}.{index}" if path else str(index), item, depth + 1)
                for index, item in enumerate(value)
            )


def _printable(text: str) -> str:
    """``text`` with any lone surrogate written as an escape, so it can be logged."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unknown_type(
    event_type: object, extra_types: Collection[str], event_id: str | None
) -> InvalidEvent:
    known = ", ".join([*EVENT_MODELS, *sorted(extra_types)])
    if event_type is None:
        message = f"event_type: missing (expected one of {known})"
        return InvalidEvent("schema_violation", message, path="event_type", event_id=event_id)
    return InvalidEvent(
        "unknown_event_type",
        f"event_type: unknown type {_show(event_type)} (expected one of {known})",
        path="event_type",
        event_id=event_id,
    )


def _schema_error(exc: ValidationError, event_id: str | None) -> InvalidEvent:
    parts = []
    first_path = None
    for error in exc.errors(include_url=False):
        path = ".".join(str(p) for p in error["loc"]) or "(event)"
        first_path = first_path or path
        if error["type"] == "missing":
            parts.append(f"{path}: missing")
        else:
            message = error["msg"].removeprefix("Value error, ")
            parts.append(f"{path}: {_lower_first(message)}, got {_show(error['input'])}")
    return InvalidEvent("schema_violation", "; ".join(parts), path=first_path, event_id=event_id)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _show(value: object, limit: int = 60) -> str:
    text = _printable(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= limit else text[: limit - 1] + "…"
