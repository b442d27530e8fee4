"""SIGTERM and SIGINT for the long-running commands (``run``, ``history serve``).

The first asks the command to stop (it drains or closes within its grace period);
a second exits at once, for an operator who will not wait.
"""

from __future__ import annotations

import asyncio
import os
import signal

from consumer.logs import get_logger

log = get_logger(__name__)


def stop_on_signals() -> asyncio.Event:
    """An event the first SIGTERM or SIGINT sets; call inside the running event loop."""
    stop = asyncio.Event()

    def on_signal(name: str) -> None:
        if stop.is_set():
            log.warning("second_signal_exit_now", signal=name)
            os._exit(1)
        log.info("shutdown_requested", signal=name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    return stop
