"""The command line as a user meets it: what a mistake prints, and what --help shows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.settings import settings_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _, _ in settings_table():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused at once."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def _environ(**variables: str) -> dict[str, str]:
    names = {name for name, _, _ in settings_table()}
    kept = {k: v for k, v in os.environ.items() if k not in names}
    return {**kept, "MAPPINGS_DIR": str(REPO / "mappings"), **variables}


# ---- mistakes: one line, exit 2


@pytest.mark.usefixtures("clean_environ")
def test_a_bad_setting_is_one_line_on_stderr_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "host:abc")

    code = main(["settings"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == (
        "error: invalid setting KAFKA_BOOTSTRAP_SERVERS='host:abc': port 'abc' is not a number; "
        "expected host:port[,host:port...], e.g. localhost:9092\n"
    )


def test_run_with_a_bad_setting_starts_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "consumer", "run"],
        env=_environ(KAFKA_BOOTSTRAP_SERVERS="nowhere", LOG_FORMAT="json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: invalid setting KAFKA_BOOTSTRAP_SERVERS='nowhere': no port (Kafka's usual one "
        "is 9092: nowhere:9092); expected host:port[,host:port...], e.g. localhost:9092"
    ]


def test_run_against_no_broker_says_so_in_one_line_and_leaves_nothing_open(
    closed_port: int,
) -> None:
    bootstrap = f"127.0.0.1:{closed_port}"
    done = subprocess.run(
        [sys.executable, "-m", "consumer", "run"],
        env=_environ(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            PUSH_PROVIDER="dry-run",
            HEALTH_PORT="0",
            LOG_FORMAT="json",
            PYTHONWARNINGS="always",  # an unclosed client would warn
            PYTHONASYNCIODEBUG="1",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert errors == [
        f"error: cannot reach Kafka at {bootstrap}: no broker answered there "
        "(is one running? is KAFKA_BOOTSTRAP_SERVERS right?)"
    ]
    logged = [line for line in done.stderr.splitlines() if line.startswith("{")]
    assert not [line for line in logged if '"level":"info"' not in line], logged
