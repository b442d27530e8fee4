"""A real, throwaway PostgreSQL server for tests and benchmarks.

``LocalPostgres`` makes a fresh cluster with ``initdb`` in a temporary directory,
runs ``postgres`` on a free loopback port (password authentication, no other
listener), and removes everything at ``stop()``. The binaries come from
Debian's packages (``/usr/lib/postgresql/<version>/bin``, the newest) or the
``PATH``. PostgreSQL refuses to run as root, so as root it runs as the
``postgres`` user the package creates. The server dies with the process that
started it, like the local Kafka broker.

``stop_server()`` and ``start_server()`` stop and start the same cluster on the
same port: an outage, as the service sees one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from consumer.errors import FatalError
from consumer.local.kafka_process import dying_with_parent, free_ports

_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_USER = "history"
_RUN_AS_WHEN_ROOT = "postgres"


class PostgresUnavailable(FatalError):
    """No PostgreSQL server binaries here (or no user to run them as)."""

    reason = "postgres_unavailable"


class PostgresStartFailed(FatalError):
    """The server was started but did not come up; the message ends with its log."""

    reason = "postgres_start_failed"


def find_binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres``; ``PostgresUnavailable`` if none."""
    versions = sorted(glob.glob(_BIN_GLOB), key=_major, reverse=True)
    for directory in [*versions, *(str(Path(p).parent) for p in [shutil.which("initdb")] if p)]:
        if (Path(directory) / "initdb").is_file() and (Path(directory) / "postgres").is_file():
            return Path(directory)
    raise PostgresUnavailable(
        "no PostgreSQL server found (initdb and postgres in /usr/lib/postgresql/*/bin or on "
        "the PATH); on Debian or Ubuntu: apt-get install postgresql"
    )


def _major(directory: str) -> int:
    name = Path(directory).parent.name
    return int(name) if name.isdigit() else 0


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1, its data in a temporary directory."""

    def __init__(self, *, durable: bool = True, start_timeout_s: float = 60.0) -> None:
        # durable=False turns fsync off: quicker for tests, and an outage test stops
        # the server cleanly anyway.
        self._durable = durable
        self._start_timeout_s = start_timeout_s
        self._bin: Path | None = None
        self._dir: Path | None = None
        self._port: int | None = None
        self._password = secrets.token_hex(12)
        self._process: subprocess.Popen[bytes] | None = None
        self._user = _RUN_AS_WHEN_ROOT if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """``postgresql://`` URL of the ``postgres`` database, as the service takes it."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        if self._port is None:
            raise RuntimeError("LocalPostgres is not started")
        return f"postgresql://{_USER}:{self._password}@127.0.0.1:{self._port}/{database}"

    def start(self) -> str:
        """Make the cluster and start the server; block until it accepts connections."""
        try:
            self._bin = find_binaries()
            self._make_cluster()
            self.start_server()
        except BaseException:
            self.stop()
            raise
        return self.url

    def start_server(self) -> None:
        """Start (again) the server of the cluster on its port."""
        assert self._bin is not None
        assert self._dir is not None
        assert self._port is not None
        if self._process is not None:
            return
        server = [
            str(self._bin / "postgres"),
            "-D",
            str(self._dir / "data"),
            "-p",
            str(self._port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self._dir}",
            "-c",
            f"fsync={'on' if self._durable else 'off'}",
            "-c",
            "max_connections=200",
        ]
        with (self._dir / "server.log").open("ab") as out:
            self._process = subprocess.Popen(
                dying_with_parent(server, user=self._user),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def stop_server(self, *, immediate: bool = False) -> None:
        """Stop the server, keep the cluster (``immediate``: as a crash would, no checkpoint)."""
        process, self._process = self._process, None
        if process is None:
            return
        # SIGINT: fast shutdown (clients cut, clean checkpoint); SIGQUIT: immediate.
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server and remove the cluster."""
        try:
            self.stop_server()
        finally:
            directory, self._dir = self._dir, None
            self._port = None
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _make_cluster(self) -> None:
        assert self._bin is not None
        self._dir = Path(tempfile.mkdtemp(prefix="localpostgres-"))
        (self._port,) = free_ports(1)
        password_file = self._dir / "password"
        password_file.write_text(self._password + "\n", encoding="utf-8")
        self._hand_over(self._dir, password_file)
        command = [
            str(self._bin / "initdb"),
            "-D",
            str(self._dir / "data"),
            "-U",
            _USER,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False, user=self._user
        )
        password_file.unlink()
        if done.returncode != 0:
            raise PostgresStartFailed(
                f"initdb in {self._dir} failed (exit {done.returncode}):\n"
                + (done.stdout + done.stderr).strip()
            )

    def _hand_over(self, *paths: Path) -> None:
        """As root, give the server's user the directory (it refuses one it does not own)."""
        if self._user is None:
            return
        try:
            account = pwd.getpwnam(self._user)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, PostgreSQL needs an unprivileged user to run as; there is "
                f"no `{self._user}` user (Debian's postgresql package makes it)"
            ) from None
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)

    def _wait_ready(self) -> None:
        assert self._bin is not None
        assert self._process is not None
        ready = [str(self._bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self._port), "-q"]
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresStartFailed(
                    f"postgres exited with status {self._process.returncode} during start\n"
                    f"{self._log_tail()}"
                )
            if subprocess.run(ready, check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise PostgresStartFailed(
            f"postgres did not accept connections within {self._start_timeout_s:g} s\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        assert self._dir is not None
        path = self._dir / "server.log"
        if not path.exists():
            return f"(no server log in {self._dir})"
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"--- {path} (last {lines} lines) ---\n" + "\n".join(text)
