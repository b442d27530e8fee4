"""What both simulators share: an aiohttp app served on an address, started and
stopped from tests, the demo and the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from consumer.errors import FatalError


class SimulatorServer:
    """A subclass builds its routes in ``_app()``; this class runs them."""

    name = "simulator"

    def __init__(self) -> None:
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    def _app(self) -> web.Application:
        raise NotImplementedError

    def announcement(self) -> dict[str, Any]:
        """What the command line prints once the server listens."""
        return {"simulator": self.name, "base_url": self.base_url}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as exc:  # e.g. the port is taken
            await self.stop()
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise FatalError(
                f"the {self.name} simulator cannot listen on {host}:{port}: {why}; "
                "pick another --port (0 picks a free one)"
            ) from exc
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # hanging handlers give up now
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _wait_or_stop(self, seconds: float) -> None:
        """Sleep (an injected hang or latency), but give up when the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def serve_forever(self, host: str, port: int) -> None:
        """Listen until interrupted (the command line)."""
        await self.start(host, port)
        print(json.dumps(self.announcement()), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
