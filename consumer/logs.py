"""Logging with structlog: JSON lines in production, readable on a terminal.

Log events are snake_case facts (``push_sent``) with fields. Per-event context
(topic, partition, offset, event_id, event_type) is bound with ``event_context``
and carried by contextvars across awaits. Values of keys that look secret are
replaced before rendering, at any depth (``redact_secrets``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO, cast

import orjson
import structlog
from pydantic import SecretBytes, SecretStr
from structlog.typing import FilteringBoundLogger

from consumer.settings import LogFormat

_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authorization)", re.I)
REDACTED = "[redacted]"


# Values of these exact types hold nothing to hide unless their key looks secret.
_PLAIN = frozenset({str, int, float, bool, type(None)})
_SECRET_TYPES = (SecretStr, SecretBytes)
_CONTAINERS = frozenset({tuple, list, set, frozenset})  # rebuilt as the same type
_MAX_DEPTH = 32


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Hide values under secret-looking keys, and any pydantic secret, at any depth:
    in dicts, lists, tuples and sets, and the value of a ``(name, value)`` pair whose
    name looks secret (header lists)."""
    for key, value in event_dict.items():
        # Most fields are plain scalars under ordinary keys: skipping the general
        # walk for them halves the cost of this step (it runs for every line).
        if type(value) in _PLAIN and not _secret_key(key):
            continue
        event_dict[key] = _redacted(key, value)
    return event_dict


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    # Log lines reuse a few dozen keys; a regex search per key per line was a
    # third of the cost of a line.
    return _SECRET_KEY.search(key) is not None


def _redacted(key: str, value: Any, depth: int = 0) -> Any:
    if isinstance(value, _SECRET_TYPES) or (_secret_key(key) and value not in (None, "")):
        return REDACTED
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth >= _MAX_DEPTH:
        return REDACTED  # too deep to check: a secret could hide below
    if isinstance(value, Mapping):
        return {k: _redacted(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, tuple | list) and len(value) == 2 and _names_secret(value[0]):
        # A (name, value) pair, as header lists carry them: [("Authorization", "Bearer …")]
        return [value[0], REDACTED] if kind is list else (value[0], REDACTED)
    if isinstance(value, tuple | list | set | frozenset):
        items = (_redacted("", item, depth + 1) for item in value)
        return kind(items) if kind in _CONTAINERS else list(items)
    return value


def _names_secret(name: Any) -> bool:
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    return isinstance(name, str) and _secret_key(name)


# Types orjson would render differently from ``json.dumps`` go to ``default`` (repr),
# as they did with the standard library encoder.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dumps(event_dict: Any, **dumps_kw: Any) -> str:
    """One JSON line: orjson takes ~1 µs where ``json.dumps`` took ~9 µs per line.

    What orjson refuses (keys that are not strings, integers beyond 64 bits) is
    rendered by the standard library as before.
    """
    try:
        return orjson.dumps(
            event_dict, default=dumps_kw["default"], option=_ORJSON_OPTIONS
        ).decode()
    except orjson.JSONEncodeError:
        return json.dumps(event_dict, ensure_ascii=False, **dumps_kw)


def configure_logging(
    level: str = "info", fmt: LogFormat = LogFormat.AUTO, stream: TextIO | None = None
) -> None:
    """Configure structlog, and route the stdlib loggers (aiokafka, aiohttp) the same way."""
    out = stream or sys.stderr
    console = fmt is LogFormat.CONSOLE or (fmt is LogFormat.AUTO and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if console
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    shared: list[Any] = [
        _logger_key,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    tail: list[Any] = [] if console else [structlog.processors.dict_tracebacks]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                renderer,
            ],
        )
    )
    global _LINES
    _LINES = None if console or numeric_level > logging.INFO else _Lines(out)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries talk a lot at INFO (every rebalance step); keep their warnings and up.
    root.setLevel(max(numeric_level, logging.WARNING))


@contextmanager
def event_context(
    *,
    topic: str,
    partition: int,
    offset: int,
    event_id: str | None = None,
    event_type: str | None = None,
) -> Iterator[None]:
    """Bind one event's identity to every log line inside the block."""
    context = {"topic": topic, "partition": partition, "offset": offset}
    if event_id is not None:
        context["event_id"] = event_id
    if event_type is not None:
        context["event_type"] = event_type
    with structlog.contextvars.bound_contextvars(**context):
        yield


def _logger_key(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Our loggers carry ``logger_name`` (``logger`` is taken in structlog's API);
    print it as ``logger``, the key the stdlib loggers' lines use."""
    if "logger_name" in event_dict:
        event_dict["logger"] = event_dict.pop("logger_name")
    return event_dict


def get_logger(name: str) -> FilteringBoundLogger:
    # Lazy until first use, so module-level loggers follow configure_logging().
    return cast(FilteringBoundLogger, _ModuleLogger(name))


class _ModuleLogger:
    """A module's logger, assembled once per logging configuration.

    structlog's lazy proxy, with ``cache_logger_on_first_use`` off (so module
    loggers follow ``configure_logging`` and ``structlog.testing.capture_logs``),
    assembles a new bound logger for every line: a fifth of the cost of an
    outcome line. This one assembles again only when the configuration changed.
    """

    __slots__ = ("_bound", "_config", "_proxy")

    def __init__(self, name: str) -> None:
        self._proxy = structlog.get_logger(logger_name=name)
        self._config: tuple[object, ...] = ()
        self._bound: Any = None

    def __getattr__(self, name: str) -> Any:
        config = _config_identity()
        if config != self._config:  # identical objects: a few identity checks
            self._bound, self._config = self._proxy.bind(), config
        return getattr(self._bound, name)


def _config_identity() -> tuple[object, ...]:
    config = structlog.get_config()
    return (
        config["processors"],
        config["context_class"],
        config["wrapper_class"],
        config["logger_factory"],
    )


# ---- the per-event info lines, written straight


class _Lines:
    """Info lines written as ``configure_logging``'s JSON chain writes them, without
    the chain: the same keys in the same order, the same timestamp, the same
    redaction. structlog's ``PrintLogger`` flushes every line under a lock, which
    was 40 % of an outcome line's cost; these wait in the stream's buffer until
    ``flush_lines()``, which the service calls after each fetched batch and before
    every commit (so a committed event's line is out first).

    In force only while structlog's configuration is the one made with it: a
    test's ``capture_logs`` (or any reconfiguration) sends lines through structlog.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        # Bytes straight into a UTF-8 stream's buffer: its text layer would flush per line.
        utf8 = str(getattr(out, "encoding", "")).lower().replace("-", "") == "utf8"
        self._binary: Any = getattr(out, "buffer", None) if utf8 else None
        self._errors = str(getattr(out, "errors", None) or "strict")
        self._config = _config_identity()
        self._chain = tuple(structlog.get_config()["processors"])

    def current(self) -> bool:
        """structlog's configuration is still ours (``capture_logs`` swaps the processors
        inside the same list), and no context is bound (whose values only structlog's
        chain renders exactly)."""
        if _config_identity() != self._config:
            return False
        if tuple(structlog.get_config()["processors"]) != self._chain:
            return False
        for var in contextvars.copy_context():
            if var.name.startswith(_CONTEXTVAR_PREFIX) and var.get() is not Ellipsis:
                return False
        return True

    def write(self, logger: str, event: str, fields: dict[str, Any]) -> None:
        fields["event"] = event
        fields["logger"] = logger
        fields["level"] = "info"
        fields["timestamp"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        redact_secrets(None, "info", fields)
        try:
            line = orjson.dumps(fields, option=_ORJSON_OPTIONS | orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:  # as ``_dumps``: the standard library renders it
            self._write_text(json.dumps(fields, ensure_ascii=False) + "\n")
            return
        if self._binary is not None:
            self._binary.write(line)
        else:
            self._out.write(line.decode())

    def _write_text(self, text: str) -> None:
        if self._binary is not None:  # as the text layer would encode it
            self._binary.write(text.encode("utf-8", self._errors))
        else:
            self._out.write(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):  # a stream closed since (a test's)
            (self._binary or self._out).flush()


_CONTEXTVAR_PREFIX = structlog.contextvars.STRUCTLOG_KEY_PREFIX
_LINES: _Lines | None = None


class LineLogger:
    """A module's per-event info lines: written straight while the JSON format is
    configured (see ``_Lines``), through structlog otherwise (the console, a test
    capturing logs, a level above info)."""

    __slots__ = ("_fallback", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._fallback = get_logger(name)

    def info(self, event: str, fields: dict[str, Any]) -> None:
        """Log ``fields`` (plain values; the dict is used up) as structlog's ``info``."""
        lines = _LINES
        if lines is None or not lines.current() or not _all_plain(fields):
            self._fallback.info(event, **fields)
            return
        lines.write(self._name, event, fields)


def _all_plain(fields: dict[str, Any]) -> bool:
    """Values structlog's fallback handler would never see (anything else goes through it)."""
    return all(type(value) in _PLAIN for value in fields.values())


def flush_lines() -> None:
    """Write out the info lines waiting in the buffer."""
    if _LINES is not None:
        _LINES.flush()
