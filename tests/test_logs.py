"""Logging: JSON lines off a TTY, per-event context, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from consumer.logs import LineLogger, configure_logging, event_context, flush_lines, get_logger
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


def test_secrets_inside_lists_tuples_and_header_pairs_are_redacted() -> None:
    out = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=out)

    get_logger("test").info(
        "request_sent",
        headers=[("Authorization", "Bearer h-1"), ("Accept", "json")],
        raw_headers=((b"x-api-key", b"h-2"),),
        clients=[{"name": "imshop", "api_key": "h-3"}, {"name": "dry"}],
        nested={"layers": [[{"token": SecretStr("h-4")}]]},
        one_pair=("sasl_password", "h-5"),
    )

    text = out.getvalue()
    for secret in ("h-1", "h-2", "h-3", "h-4", "h-5"):
        assert secret not in text, f"{secret} logged in clear: {text}"
    (line,) = lines(out)
    assert line["headers"] == [["Authorization", "[redacted]"], ["Accept", "json"]]
    assert line["clients"] == [{"name": "imshop", "api_key": "[redacted]"}, {"name": "dry"}]
    assert line["nested"] == {"layers": [[{"token": "[redacted]"}]]}
    assert line["one_pair"] == ["sasl_password", "[redacted]"]


SECRET = "s3cr3t"  # planted only where it must be hidden; no plain text can contain it
SECRET_NAMES = ["api_key", "X-Api-Key", "Authorization", "db_password", "refresh_token", "secret"]
PLAIN_NAMES = ["headers", "items", "name", "note", "id", "user", "body", "value"]
plain_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text("abc xyz-é", max_size=8)
)


def nested(leaves: st.SearchStrategy[object], with_secrets: bool) -> st.SearchStrategy[object]:
    """Dicts, lists, tuples and (name, value) pairs of ``leaves``, any depth; with
    ``with_secrets``, secrets planted under secret names, in pairs and as SecretStr."""
    if with_secrets:
        leaves = st.one_of(leaves, st.builds(SecretStr, st.just(SECRET)))

    def extend(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        plain = st.dictionaries(st.sampled_from(PLAIN_NAMES), inner, max_size=3)
        parts = [
            plain,
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=4).map(tuple),
            st.tuples(st.sampled_from(PLAIN_NAMES), inner),
        ]
        if with_secrets:
            hidden = st.one_of(inner, st.just(SECRET))
            secret = st.dictionaries(st.sampled_from(SECRET_NAMES), hidden, min_size=1, max_size=2)
            parts.append(st.builds(lambda a, b: a | b, plain, secret))
            parts.append(st.tuples(st.sampled_from(SECRET_NAMES), hidden))
        return st.one_of(parts)

    return st.recursive(leaves, extend, max_leaves=30)


def logged(value: object) -> dict[str, object]:
    out = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=out)
    get_logger("test").info("nested_value", field=value)
    assert SECRET not in out.getvalue(), out.getvalue()
    (line,) = lines(out)
    return line


@settings(max_examples=300, deadline=None)
@given(value=nested(plain_leaf, with_secrets=True))
def test_no_secret_survives_in_any_nesting(value: object) -> None:
    logged(value)


@settings(max_examples=200, deadline=None)
@given(value=nested(plain_leaf, with_secrets=False))
def test_values_without_secrets_are_logged_unchanged(value: object) -> None:
    line = logged(value)

    assert line["field"] == json.loads(json.dumps(value))


def test_a_value_that_contains_itself_is_logged_not_walked_forever() -> None:
    out = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=out)
    loop: list[object] = [{"api_key": SECRET}]
    loop.append(loop)

    get_logger("test").info("looped", field=loop)

    assert SECRET not in out.getvalue()
    (line,) = lines(out)
    assert "[redacted]" in json.dumps(line["field"])


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


# ---- the per-event info lines written straight (LineLogger)

_FIELD_VALUES = st.one_of(
    st.text(),
    st.sampled_from(["\ud800", "a\udfffb"]),  # lone surrogates: orjson refuses them
    st.integers(-(2**70), 2**70),  # beyond 64 bits orjson refuses: the stdlib renders it
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
_FIELDS = st.dictionaries(
    st.sampled_from(
        ["topic", "partition", "offset", "event_id", "event_type", "reason", "error", "token"]
    ),
    _FIELD_VALUES,
)


def _utf8_stream() -> io.TextIOWrapper:
    """Like stderr: UTF-8 text over a buffered binary stream."""
    buffered = io.BufferedWriter(io.BytesIO())  # type: ignore[arg-type]
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="backslashreplace")


def _raw(stream: io.TextIOWrapper) -> bytes:
    raw = stream.buffer.raw  # type: ignore[attr-defined]
    assert isinstance(raw, io.BytesIO)
    return raw.getvalue()


def _written(stream: io.TextIOBase) -> str:
    stream.flush()
    if isinstance(stream, io.TextIOWrapper):
        return _raw(stream).decode("utf-8")
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


@pytest.mark.parametrize("make_stream", [io.StringIO, _utf8_stream])
@given(event=st.sampled_from(["event_sent", "event_skipped"]), fields=_FIELDS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_line_written_straight_is_the_line_structlog_writes(
    make_stream: Callable[[], io.TextIOBase], event: str, fields: dict[str, object]
) -> None:
    """Same keys in the same order, same values, same redaction; only the moment differs."""
    ours, theirs = make_stream(), make_stream()
    configure_logging("info", LogFormat.JSON, stream=theirs)
    get_logger("consumer.outcomes").info(event, **fields)
    configure_logging("info", LogFormat.JSON, stream=ours)
    LineLogger("consumer.outcomes").info(event, dict(fields))
    flush_lines()

    (mine, end), (reference, _) = _written(ours).split("\n"), _written(theirs).split("\n")
    assert end == ""
    fast, slow = json.loads(mine), json.loads(reference)
    assert list(fast) == list(slow)
    assert {**fast, "timestamp": None} == {**slow, "timestamp": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(fast["timestamp"]))
    assert mine.replace(str(fast["timestamp"]), "") == reference.replace(str(slow["timestamp"]), "")


def test_lines_wait_in_the_buffer_until_flushed() -> None:
    out = _utf8_stream()
    configure_logging("info", LogFormat.JSON, stream=out)
    LineLogger("consumer.outcomes").info("event_sent", {"offset": 1})

    assert _raw(out) == b""
    flush_lines()
    assert json.loads(_raw(out))["offset"] == 1


def test_a_structlog_line_after_waiting_ones_comes_after_them() -> None:
    out = _utf8_stream()
    configure_logging("info", LogFormat.JSON, stream=out)
    LineLogger("consumer.outcomes").info("event_sent", {"offset": 1})
    get_logger("consumer.app").warning("something_else")

    events = [json.loads(line)["event"] for line in _written(out).splitlines()]
    assert events == ["event_sent", "something_else"]


def test_lines_go_through_structlog_when_it_is_not_our_json_chain() -> None:
    configure_logging("info", LogFormat.JSON, stream=io.StringIO())
    with structlog.testing.capture_logs() as captured:
        LineLogger("consumer.outcomes").info("event_sent", {"offset": 7})
    assert captured == [
        {
            "logger_name": "consumer.outcomes",
            "event": "event_sent",
            "offset": 7,
            "log_level": "info",
        }
    ]


def test_lines_follow_the_level_and_the_bound_context() -> None:
    quiet = io.StringIO()
    configure_logging("warning", LogFormat.JSON, stream=quiet)
    LineLogger("consumer.outcomes").info("event_sent", {"offset": 1})
    flush_lines()
    assert quiet.getvalue() == ""

    out = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=out)
    with event_context(topic="orders", partition=0, offset=3):
        LineLogger("consumer.outcomes").info("event_sent", {"event_id": "e-1"})
    flush_lines()
    (line,) = lines(out)
    assert line["event_id"] == "e-1"
    assert line["topic"] == "orders"
