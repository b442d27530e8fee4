"""The broker process of ``LocalKafka``: its configuration, ports, and ending it.

Kept apart from the start/stop logic so each stays small.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

JVM_OPTIONS = [
    "-Xms128m",
    "-Xmx512m",
    # Gentle on small shared machines: one GC thread, no C2 compiler warm-up.
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

KILL_WAIT_S = 10.0

LOG4J2_PROPERTIES = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = FILE
"""


def server_properties(
    data: Path, broker_port: int, controller_port: int, overrides: Mapping[str, str] | None = None
) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data / "logs"),
        "num.partitions": "3",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        # Fewer internal partitions make the first group join quick on a small machine.
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        **(overrides or {}),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding.
    # Kafka never hands out one starting with "-" (it would read as a CLI flag).
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def free_ports(count: int) -> list[int]:
    # Keep every socket open until all are chosen so the ports are distinct.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """Whether a listener could bind ``port`` on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As a server socket does: a port whose last connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def terminate_group(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """SIGTERM the broker's process group, SIGKILL it if it lingers; False if it outlives both."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=KILL_WAIT_S)
        return True
    except subprocess.TimeoutExpired:
        return False


# Optionally the switch to another user, then PR_SET_PDEATHSIG (after the switch:
# changing credentials clears it), then a check that the parent did not die
# before it was set, then the server's exec. It runs in a fresh single-threaded
# interpreter: code run through Popen's preexec_fn would run in a forked copy of
# this threaded process (asyncio.to_thread, aiokafka), where a lock held by
# another thread at the fork can deadlock the child. The death signal survives
# the exec.
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
parent, user, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
if user:
    import pwd
    account = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
except (OSError, AttributeError):
    pass
if os.getppid() != parent:
    sys.exit("the process that started this server is gone; not starting it")
os.execv(command[0], command)
"""


def dying_with_parent(command: list[str], *, user: str | None = None) -> list[str]:
    """On Linux, ``command`` wrapped so the kernel SIGKILLs it if this process dies without stop().

    The server runs in its own session (so Ctrl-C reaches only us and we stop it
    in order); this keeps a killed test run from leaving a JVM (or a database)
    behind. The "parent" is the thread that spawns it, which must outlive the
    server. ``command[0]`` must be a path (it is exec'd without a PATH search).
    ``user``: run it as this user (this process must be root), e.g. PostgreSQL,
    which refuses to run as root.
    """
    if not sys.platform.startswith("linux"):
        if user is not None:
            raise RuntimeError(f"running a server as {user!r} is supported on Linux only")
        return command
    shim = [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), user or ""]
    return [*shim, *command]
