"""aiokafka's own log lines, summarised instead of streamed, and the harmless ones lowered.

While a broker is down aiokafka logs the same error for every retry of every
task: about 1,570 lines in 24 s were seen. ``ClientLogSummary`` lets the first
line of each kind (logger, message template and level) through, counts the
repeats for ``window_s``, and then says in one line how many there were and the
last of them. The service's own probes say what the trouble is (``/readyz``).

Lines that are part of normal operation are lowered, so they no longer read as
errors: the group coordinator not being available yet (a broker just started),
a heartbeat answered "rebalancing", and a subscribed topic missing from the
metadata (the source says that once, as ``kafka_topic_missing``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from aiokafka.errors import GroupCoordinatorNotAvailableError

from consumer.clock import Clock
from consumer.logs import get_logger

log = get_logger(__name__)

_LOWERED = {
    "Topic %s not found in cluster metadata": logging.DEBUG,
    "Heartbeat failed for group %s because it is rebalancing": logging.INFO,
}
_COORDINATOR_LOOKUP_FAILED = "Group Coordinator Request failed: %s"


@dataclass(slots=True)
class _Window:
    started: float
    repeats: int = 0
    last: str = ""


class ClientLogSummary(logging.Filter):
    def __init__(self, clock: Clock, window_s: float = 30.0) -> None:
        super().__init__()
        self._clock = clock
        self.window_s = window_s
        self._windows: dict[tuple[str, object, int], _Window] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[ClientLogSummary]:
        """Filter every aiokafka logger while the block runs."""
        loggers = _aiokafka_loggers()
        for logger in loggers:
            logger.addFilter(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeFilter(self)
            self.flush(final=True)

    def filter(self, record: logging.LogRecord) -> bool:
        _lower(record)
        if record.levelno < logging.getLogger(record.name).getEffectiveLevel():
            return False
        if record.levelno < logging.WARNING:
            return True
        now = self._clock.monotonic()
        key = (record.name, record.msg, record.levelno)
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window_s:
            if window is not None:
                self._report(key, window)
            self._windows[key] = _Window(now)
            return True
        window.repeats += 1
        window.last = record.getMessage()
        return False

    def flush(self, *, final: bool = False) -> None:
        """Report the repeats of every window that has ended (all of them if ``final``)."""
        now = self._clock.monotonic()
        for key, window in list(self._windows.items()):
            if final or now - window.started >= self.window_s:
                self._report(key, window)
                del self._windows[key]

    async def run(self) -> None:
        """Report repeats as their windows end, also when the lines stop coming."""
        while True:
            await self._clock.sleep(self.window_s / 2)
            self.flush()

    def _report(self, key: tuple[str, object, int], window: _Window) -> None:
        if not window.repeats:
            return
        name, template, level = key
        log.log(
            level,
            "kafka_client_log_repeated",
            client_logger=name,
            repeats=window.repeats,
            within_s=round(self._clock.monotonic() - window.started, 1),
            message=str(template),
            last=window.last,
        )


def _lower(record: logging.LogRecord) -> None:
    level = _LOWERED.get(str(record.msg))
    args = record.args if isinstance(record.args, tuple) else ()
    if record.msg == _COORDINATOR_LOOKUP_FAILED and any(
        isinstance(arg, GroupCoordinatorNotAvailableError) for arg in args
    ):
        level = logging.INFO  # the broker is still loading the group's coordinator
    if level is not None and level < record.levelno:
        record.levelno, record.levelname = level, logging.getLevelName(level)


def _aiokafka_loggers() -> list[logging.Logger]:
    names = [
        name
        for name in logging.root.manager.loggerDict
        if name == "aiokafka" or name.startswith("aiokafka.")
    ]
    return [logging.getLogger(name) for name in sorted(names)]
