"""The layout's promises: the service never loads the local tooling or the studio."""

from __future__ import annotations

import subprocess
import sys


def test_the_service_loads_nothing_from_the_local_tooling() -> None:
    probe = (
        "import sys, consumer.app, consumer.replay.command\n"
        "print(sorted(m for m in sys.modules if m.startswith('consumer.local')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_service_loads_nothing_from_the_product_teams_tools() -> None:
    # The preview page (an HTTP server) and the diff are for people editing
    # mappings; the running service must not carry them.
    probe = (
        "import sys, consumer.app, consumer.mapping\n"
        "print(sorted(m for m in sys.modules if m.startswith('consumer.studio')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_cli_lists_local_commands_without_loading_them_for_run() -> None:
    # `run` goes through the CLI, which registers every command; the local ones must
    # still be importable from there (a moved module would break `--help`).
    out = subprocess.run(
        [sys.executable, "-m", "consumer", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "run",
        "mappings",
        "demo",
        "kafka",
        "simulate",
        "bench",
        "dlq",
        "samples",
        "history",
    ):
        assert command in out
