"""Logging: JSON lines off a TTY, per-event context, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from consumer.logs import configure_logging, event_context, get_logger
from consumer.settings import LogFormat


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_event_context() -> None:
    out = io.StringIO()
    configure_logging("info", LogFormat.AUTO, stream=out)
    log = get_logger("test")

    with event_context(
        topic="orders", partition=2, offset=41, event_id="e-1", event_type="bonus.accrued"
    ):
        log.info("push_sent", recipients=3)
    log.info("after_event")

    first, second = lines(out)
    assert first["event"] == "push_sent"
    assert first["logger"] == "test"
    assert first["level"] == "info"
    assert {k: first[k] for k in ("topic", "partition", "offset", "event_id", "event_type")} == {
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "event_id": "e-1",
        "event_type": "bonus.accrued",
    }
    assert "topic" not in second


def test_secrets_are_redacted_at_any_depth() -> None:
    out = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=out)

    get_logger("test").info(
        "config_loaded",
        api_key="k-123",
        sasl_password="p-456",
        token=SecretStr("t-789"),
        headers={"Authorization": "Bearer k-123", "Accept": "json"},
        note="nothing secret",
    )

    text = out.getvalue()
    for secret in ("k-123", "p-456", "t-789"):
        assert secret not in text
    (line,) = lines(out)
    assert line["headers"] == {"Authorization": "[redacted]", "Accept": "json"}
    assert line["note"] == "nothing secret"


def test_level_filters_lower_levels() -> None:
    out = io.StringIO()
    configure_logging("warning", LogFormat.JSON, stream=out)

    get_logger("test").info("quiet")
    get_logger("test").warning("loud")

    assert [line["event"] for line in lines(out)] == ["loud"]


def test_library_logs_through_stdlib_come_out_as_json_too() -> None:
    out = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=out)

    logging.getLogger("aiokafka.consumer").warning("Topic %s not found", "orders")

    (line,) = lines(out)
    assert line["event"] == "Topic orders not found"
    assert line["level"] == "warning"
    assert line["logger"] == "aiokafka.consumer"
