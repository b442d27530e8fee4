"""A real single-node Apache Kafka broker (KRaft) for tests and the demo.

``LocalKafka`` formats a fresh storage directory, starts the broker JVM from the
cached jars (see ``consumer.local.kafka_jars``) on free loopback ports, waits until it
serves clients, and stops it so that no JVM is left behind::

    async with LocalKafka() as kafka:
        print(kafka.bootstrap_servers)

Sync code (a pytest session fixture, the CLI) uses ``start()`` / ``stop()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from consumer.errors import FatalError
from consumer.local.kafka_jars import (
    KAFKA_VERSION,
    KafkaUnavailable,
    default_cache_dir,
    ensure_jars,
    require_java,
)
from consumer.local.kafka_process import (
    JVM_OPTIONS,
    KILL_WAIT_S,
    LOG4J2_PROPERTIES,
    cluster_id,
    dying_with_parent,
    free_ports,
    port_is_free,
    server_properties,
    terminate_group,
)
from consumer.local.kafka_topics import create_topics
from consumer.logs import get_logger

log = get_logger(__name__)

__all__ = ["KafkaStartFailed", "KafkaUnavailable", "LocalKafka", "ensure_jars", "register"]

# Its data lives in a fresh temporary directory named so (removed at stop; `make clean`
# removes those a killed run left behind).
DATA_DIR_PREFIX = "localkafka-"


class KafkaStartFailed(FatalError):
    """The broker was started but did not come up; the message ends with its log tail."""

    reason = "kafka_start_failed"


class LocalKafka:
    """One broker+controller node on 127.0.0.1, in a temporary data directory."""

    def __init__(
        self,
        *,
        port: int = 0,
        cache_dir: Path | None = None,
        start_timeout_s: float = 120.0,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        """``port`` is the broker's port on 127.0.0.1 (0 picks a free one); ``properties``
        override its ``server.properties`` (e.g. no topic auto-creation)."""
        self._wanted_port = port
        self._cache_dir = cache_dir or default_cache_dir()
        self._properties = dict(properties or {})
        self._start_timeout_s = start_timeout_s
        self._data: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._command: list[str] = []

    @property
    def bootstrap_servers(self) -> str:
        if self._port is None:
            raise RuntimeError("LocalKafka is not started")
        return f"127.0.0.1:{self._port}"

    def start(self) -> str:
        """Start the broker and block until it serves clients; return the bootstrap address.

        Must not be called from a thread running an event loop (use ``async with``).
        The calling thread must outlive the broker: on Linux the broker dies with it.
        """
        try:
            self._prepare()
            self._spawn()
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._wait_ready())
            finally:
                loop.close()
        except BaseException:
            self.stop()
            raise
        return self.bootstrap_servers

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """SIGTERM the broker, SIGKILL its process group if it lingers, remove its data."""
        process, self._process = self._process, None
        data, self._data = self._data, None
        self._port = None
        try:
            if process is not None:
                with contextlib.suppress(ProcessLookupError):  # a frozen broker cannot stop
                    os.killpg(process.pid, signal.SIGCONT)
            if process is not None and not terminate_group(process, timeout_s):
                log.warning("kafka_broker_not_stopped", pid=process.pid, data_dir=str(data))
        finally:
            if data is not None:
                shutil.rmtree(data, ignore_errors=True)

    # ---- faults, for tests of what the service does when the broker misbehaves

    @property
    def running(self) -> bool:
        """The broker process exists (it may be frozen)."""
        return self._process is not None and self._process.poll() is None

    def freeze(self) -> None:
        """SIGSTOP the broker: connections stay open and nothing is answered (a hung broker)."""
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen broker: it answers what was sent meanwhile, then carries on."""
        self._signal_group(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the broker, keeping its data and port: ``restart()`` brings it back."""
        process = self._running_process()
        self._signal_group(signal.SIGKILL)
        process.wait(timeout=KILL_WAIT_S)

    async def restart(self) -> None:
        """Start the broker again on its data and port, after ``kill()``; wait until it serves."""
        if self.running:
            raise RuntimeError("the broker is still running: kill() it first")
        self._spawn()
        await self._wait_ready()

    def _running_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("LocalKafka is not started")
        return self._process

    def _signal_group(self, signum: int) -> None:
        os.killpg(self._running_process().pid, signum)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        try:
            # Fetching and formatting block for seconds: keep them off the event loop.
            await asyncio.to_thread(self._prepare)
            # Spawned from the loop's thread, which lives as long as the broker should.
            self._spawn()
            await self._wait_ready()
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _prepare(self) -> None:
        if self._wanted_port and not port_is_free(self._wanted_port):
            raise KafkaStartFailed(
                f"port {self._wanted_port} on 127.0.0.1 is in use (another Kafka broker?); "
                "stop what uses it, or pick another port (0 picks a free one)"
            )
        java = require_java()
        lib = ensure_jars(self._cache_dir)
        self._command = [java, *JVM_OPTIONS, "-cp", f"{lib}/*"]
        self._data = Path(tempfile.mkdtemp(prefix=DATA_DIR_PREFIX))
        broker_port, controller_port = free_ports(2)
        if self._wanted_port:
            broker_port = self._wanted_port
        self._port = broker_port
        (self._data / "server.properties").write_text(
            server_properties(self._data, broker_port, controller_port, self._properties),
            encoding="utf-8",
        )
        (self._data / "log4j2.properties").write_text(
            LOG4J2_PROPERTIES.format(log=self._data / "broker.log"), encoding="utf-8"
        )
        command = [
            *self._java_command(),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id(),
            "--config",
            str(self._data / "server.properties"),
            "--standalone",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise KafkaStartFailed(
                f"formatting the Kafka storage in {self._data} failed (exit {done.returncode}):\n"
                + (done.stdout + done.stderr).strip()
            )

    def _spawn(self) -> None:
        assert self._data is not None
        broker = [*self._java_command(), "kafka.Kafka", str(self._data / "server.properties")]
        with (self._data / "broker.out").open("ab") as out:  # a restart appends
            self._process = subprocess.Popen(
                dying_with_parent(broker),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _java_command(self) -> list[str]:
        assert self._data is not None
        config = self._data / "log4j2.properties"
        return [*self._command, f"-Dlog4j2.configurationFile={config}"]

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise KafkaStartFailed(
                    f"the Kafka broker exited with status {self._process.returncode} "
                    f"during start\n{self._log_tail()}"
                )
            assert self._port is not None
            if await _serves_clients(self._port):
                return
            await asyncio.sleep(0.25)
        raise KafkaStartFailed(
            f"the Kafka broker did not serve clients within {self._start_timeout_s:g} s\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        assert self._data is not None
        parts = []
        for name in ("broker.out", "broker.log"):
            path = self._data / name
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
                body = "\n".join(text) or "(empty)"
                parts.append(f"--- {path} (last {lines} lines) ---\n{body}")
        return "\n".join(parts) or f"(no broker log in {self._data})"


async def _serves_clients(port: int) -> bool:
    """True once the broker answers metadata and lists itself (registered and unfenced)."""
    # A bare connect first: aiokafka logs an error for every refused connection.
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kafka", help=f"a local Apache Kafka {KAFKA_VERSION} broker for trying the service"
    )
    commands = parser.add_subparsers(title="kafka commands", metavar="ACTION", required=True)
    start = commands.add_parser(
        "start",
        help="run a broker in the foreground until Ctrl-C",
        description="Run a single-node Kafka broker on 127.0.0.1 in the foreground; Ctrl-C "
        "stops it and removes its data. Once it serves clients, stdout gets one line a shell "
        "can eval: export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT. The first start fetches "
        f"the broker's jars with Maven (into $KAFKA_LOCAL_CACHE, default {default_cache_dir()}).",
    )
    start.add_argument(
        "--port",
        type=int,
        default=9092,
        help="the broker's port on 127.0.0.1 (KAFKA_BOOTSTRAP_SERVERS is localhost:9092 unless "
        "set); 0 picks a free one",
    )
    start.add_argument(
        "--topics",
        type=_topic_list,
        default=[],
        metavar="T1,T2",
        help="create these topics once the broker is up, e.g. orders,bonus",
    )
    start.add_argument(
        "--partitions", type=int, default=3, help="partitions of each topic --topics creates"
    )
    start.set_defaults(func=_cli_start)
    fetch = commands.add_parser("fetch", help="fetch the broker jars with Maven (once)")
    fetch.set_defaults(func=_cli_fetch)


def _topic_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _cli_fetch(_args: argparse.Namespace) -> int:
    lib = ensure_jars()
    print(f"Kafka {KAFKA_VERSION} jars: {lib} ({len(list(lib.glob('*.jar')))} jars)")
    return 0


def _cli_start(args: argparse.Namespace) -> int:
    def on_signal(*_: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    kafka = LocalKafka(port=args.port)
    try:
        print("Starting Kafka (the first start fetches its jars with Maven)...", file=sys.stderr)
        bootstrap = kafka.start()
        if args.topics:
            asyncio.run(create_topics(bootstrap, dict.fromkeys(args.topics, args.partitions)))
        _print_ready(bootstrap, args.topics, sys.stdout, sys.stderr)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        kafka.stop()
    print("Kafka stopped; its data is removed.", file=sys.stderr)
    return 0


def _print_ready(bootstrap: str, topics: list[str], out: IO[str], err: IO[str]) -> None:
    """stdout: only the line to eval; stderr: what a person reads."""
    created = f"; topics {', '.join(topics)} created" if topics else ""
    err.write(f"Kafka {KAFKA_VERSION} is running at {bootstrap}{created}. Ctrl-C stops it.\n")
    err.flush()
    out.write(f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}\n")
    out.flush()
