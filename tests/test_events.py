"""Event contract v1: valid events of each type, and every kind of bad input."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from consumer.errors import InvalidEvent
from consumer.events import (
    BonusAccrued,
    BonusExpiring,
    BonusRedeemed,
    GenericEvent,
    OrderStatusChanged,
    parse_event,
)

LIMIT = 65_536


def order_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "evt-1",
        "event_type": "order.status_changed",
        "occurred_at": "2026-11-22T10:15:00+03:00",
        "recipient": {"user_id": "79990001122"},
        "order": {
            "id": "A-1001",
            "number": "1001",
            "status": "handed_to_courier",
            "previous_status": "assembling",
            "version": 4,
            "total": {"amount": "1500.00", "currency": "RUB"},
            "items_count": 3,
            "delivery": {"method": "courier", "eta": "2026-11-22T14:00:00+03:00"},
        },
    }
    event.update(overrides)
    return event


def bonus_event(event_type: str = "bonus.accrued", **bonus: Any) -> dict[str, Any]:
    return {
        "event_id": "evt-2",
        "event_type": event_type,
        "occurred_at": "2026-11-22T07:00:00Z",
        "recipient": {"install_id": "ed6b1eec-082f-4880-9100-bcd8e2016cd1"},
        "bonus": {"amount": 150, **bonus},
    }


def raw(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def rejected(payload: bytes, **kwargs: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload, max_bytes=kwargs.pop("max_bytes", LIMIT), **kwargs)
    return caught.value


def test_order_event_is_parsed_with_typed_fields() -> None:
    event = parse_event(raw(order_event()), max_bytes=LIMIT)

    assert isinstance(event, OrderStatusChanged)
    assert event.order.version == 4
    assert event.order.total is not None
    assert event.order.total.amount == Decimal("1500.00")
    assert event.occurred_at.utcoffset() == dt.timedelta(hours=3)
    assert event.locale == "ru"
    assert event.timezone == "Europe/Moscow"
    assert event.recipient.push_id == "79990001122"


@pytest.mark.parametrize(
    ("event_type", "model"),
    [("bonus.accrued", BonusAccrued), ("bonus.redeemed", BonusRedeemed)],
)
def test_bonus_events_are_parsed(event_type: str, model: type) -> None:
    event = parse_event(raw(bonus_event(event_type, balance="320.5")), max_bytes=LIMIT)

    assert isinstance(event, model)
    assert event.bonus.amount == Decimal(150)
    assert event.bonus.balance == Decimal("320.5")
    assert event.recipient.push_id == "ed6b1eec-082f-4880-9100-bcd8e2016cd1"


def test_expiring_bonus_accepts_a_date_and_requires_it() -> None:
    payload = raw(bonus_event("bonus.expiring", expires_at="2026-12-01"))
    event = parse_event(payload, max_bytes=LIMIT)
    assert isinstance(event, BonusExpiring)
    assert event.bonus.expires_at == dt.date(2026, 12, 1)

    error = rejected(raw(bonus_event("bonus.expiring")))
    assert error.kind == "schema_violation"
    assert "bonus.expires_at: missing" in str(error)


def test_extra_fields_are_kept_and_visible_to_templates() -> None:
    data = order_event(campaign="black-friday")
    data["order"]["delivery"]["courier_name"] = "Иван"

    context = parse_event(raw(data), max_bytes=LIMIT).template_context()

    assert context["campaign"] == "black-friday"
    assert context["order"]["delivery"]["courier_name"] == "Иван"


def test_devices_are_validated_by_id_type() -> None:
    data = order_event(recipient={"user_id": "u1", "devices": [{"id_type": "fax", "id": "1"}]})

    error = rejected(raw(data))

    assert error.path == "recipient.devices.0.id_type"
    assert 'got "fax"' in str(error)


def test_a_type_declared_by_mappings_is_accepted_with_common_fields() -> None:
    data = order_event(event_type="cart.abandoned")
    del data["order"]

    event = parse_event(raw(data), max_bytes=LIMIT, extra_types={"cart.abandoned"})

    assert isinstance(event, GenericEvent)
    assert event.event_type == "cart.abandoned"


@pytest.mark.parametrize(
    ("payload", "kind", "says"),
    [
        (b"\xff\xfe{}", "invalid_utf8", "byte 0 is 0xff"),
        (b'{"event_id": ', "invalid_json", "not JSON: Expecting value: line 1 column 14"),
        (b'{"event_id": "br', "invalid_json", "string starting at: line 1 column 14 (char 13)"),
        (b"[1, 2]", "not_an_object", "expected a JSON object, got list"),
        (b'"text"', "not_an_object", "got str"),
        (raw(order_event(event_type="order.teleported")), "unknown_event_type", "order.teleported"),
        (b'{"event_id": "x"}', "schema_violation", "event_type: missing"),
        (None, "empty_record", "tombstone"),
    ],
)
def test_bad_bytes_are_rejected_with_what_and_where(
    payload: bytes | None, kind: str, says: str
) -> None:
    error = rejected(payload)  # type: ignore[arg-type]

    assert error.kind == kind
    assert says in str(error)


@pytest.mark.parametrize(
    ("change", "path", "says"),
    [
        ({"event_id": ""}, "event_id", "at least 1 character"),
        ({"occurred_at": "2026-11-22T10:15:00"}, "occurred_at", "timezone info"),
        ({"occurred_at": "yesterday"}, "occurred_at", 'got "yesterday"'),
        ({"recipient": {}}, "recipient", "needs `user_id` or `install_id`"),
        ({"recipient": {"user_id": 79990001122}}, "recipient.user_id", "got 79990001122"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown IANA time zone"),
    ],
)
def test_schema_violations_name_the_field_expected_and_got(
    change: dict[str, Any], path: str, says: str
) -> None:
    error = rejected(raw(order_event(**change)))

    assert error.kind == "schema_violation"
    assert error.path == path
    assert error.event_id == change.get("event_id", "evt-1"), "the id is kept when readable"
    assert str(error).startswith(f"{path}: ")
    assert says in str(error)


def test_nested_field_errors_give_the_full_path() -> None:
    data = order_event()
    data["order"]["version"] = "fourth"
    data["order"]["total"]["currency"] = "rubles"

    error = rejected(raw(data))

    assert "order.version: input should be a valid integer" in str(error)
    assert "order.total.currency" in str(error)


def test_missing_order_is_reported_as_missing() -> None:
    data = order_event()
    del data["order"]

    assert str(rejected(raw(data))) == "order: missing"


def test_oversized_record_is_rejected_before_parsing() -> None:
    payload = raw(order_event(padding="x" * 2_000))

    error = rejected(payload, max_bytes=1_024)

    assert error.kind == "too_large"
    assert f"{len(payload)} bytes" in str(error)
    assert "1024" in str(error)


def test_unknown_type_lists_the_types_mappings_declare() -> None:
    error = rejected(raw(order_event(event_type="cart.lost")), extra_types={"cart.abandoned"})

    assert "cart.abandoned" in str(error)
    assert error.event_id == "evt-1"


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [201, 900, 30_000])
def test_nesting_deeper_than_the_limit_is_refused_by_name(depth: int) -> None:
    # Written out: json.dumps itself cannot nest that deep.
    payload = raw(order_event(extra="@")).replace(b'"@"', b"[" * depth + b"]" * depth)
    assert len(payload) < LIMIT, "under the size limit: only the depth is wrong"

    error = rejected(payload)

    assert error.kind == "too_deeply_nested"
    assert "nested more than 200 levels deep" in str(error)


def test_nesting_up_to_the_limit_is_kept() -> None:
    event = parse_event(raw(order_event(extra=nested(199))), max_bytes=LIMIT)

    assert event.template_context()["extra"] == nested(199)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("bonus", "amount"), 1e308),
        (("bonus", "amount"), 10**400),
        (("bonus", "amount"), "1e308"),
        (("bonus", "balance"), -(10**15)),
    ],
    ids=["1e308", "400 digits", "text 1e308", "minus 10^15"],
)
def test_amounts_too_large_to_format_are_a_schema_violation(
    where: tuple[str, str], value: Any
) -> None:
    data = bonus_event()
    data[where[0]][where[1]] = value

    error = rejected(raw(data))

    assert error.kind == "schema_violation"
    assert error.path == ".".join(where)
    assert "fewer than 15 digits before the point" in str(error)


def test_the_largest_amount_allowed_is_accepted() -> None:
    data = order_event()
    data["order"]["total"]["amount"] = "999999999999999.99"

    event = parse_event(raw(data), max_bytes=LIMIT)

    assert isinstance(event, OrderStatusChanged)
    assert event.order.total is not None
    assert event.order.total.amount == Decimal("999999999999999.99")


@pytest.mark.parametrize("field", ["version", "items_count"])
def test_integers_beyond_64_bits_are_a_schema_violation(field: str) -> None:
    data = order_event()
    data["order"][field] = 10**400

    error = rejected(raw(data))

    assert error.kind == "schema_violation"
    assert error.path == f"order.{field}"


def test_an_integer_longer_than_python_reads_is_invalid_json() -> None:
    payload = raw(order_event()).replace(b'"version": 4', b'"version": ' + b"9" * 5000)

    error = rejected(payload)

    assert error.kind == "invalid_json"
    assert "more than 4300 digits" in str(error)


@pytest.mark.parametrize(
    ("payload", "path", "escape"),
    [
        (raw(order_event()).replace(b'"1001"', b'"10\\ud80001"'), "order.number", "\\ud800"),
        (raw(order_event(note="x")).replace(b'"x"', b'"\\udc00"'), "note", "\\udc00"),
        (raw(order_event(note="x")).replace(b'"note"', b'"\\ud83d"'), "\\ud83d", "\\ud83d"),
    ],
    ids=["in a field", "in an extra field", "in a key"],
)
def test_a_lone_surrogate_is_refused_and_the_message_stays_printable(
    payload: bytes, path: str, escape: str
) -> None:
    error = rejected(payload)

    assert error.kind == "invalid_unicode"
    assert error.path == path
    assert f"lone surrogate {escape}" in str(error)
    str(error).encode("utf-8")  # fit for a log line and a dead-letter header


def test_an_escaped_surrogate_pair_is_text() -> None:
    payload = raw(order_event()).replace(b'"1001"', b'"\\ud83d\\udce6 1001"')

    event = parse_event(payload, max_bytes=LIMIT)

    assert isinstance(event, OrderStatusChanged)
    assert event.order.number == "📦 1001"
