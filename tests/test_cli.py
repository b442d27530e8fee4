"""The command line as a user meets it: what a mistake prints, and what --help shows."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.cli import build_parser, main
from consumer.settings import load_settings, settings_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _, _ in settings_table():
        monkeypatch.delenv(name, raising=False)


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


# ---- help: every option described, every default shown, pointers that lead somewhere


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    """The command's --help as printed, with argparse's line wrapping undone."""
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_every_option_of_every_command_is_described() -> None:
    undescribed = [
        f"{' '.join(path)} {action.option_strings[-1]}"
        for path, parser in _commands(build_parser())
        for action in parser._actions
        if action.option_strings and not action.help
    ]

    assert not undescribed


def test_every_command_help_shows_the_defaults_it_will_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    checked = 0
    for path, parser in _commands(build_parser()):
        shown = _help(capsys, *path)
        for action in parser._actions:
            default = action.default
            nothing = default is None or default is False or default in ([], argparse.SUPPRESS)
            if not action.option_strings or nothing:
                continue
            if "(default:" not in (action.help or ""):
                assert f"(default: {default})" in shown, f"{' '.join(path)} {action.dest}"
                checked += 1
    assert checked > 20


@pytest.mark.usefixtures("clean_environ")
def test_the_local_tools_listen_where_the_service_looks_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings()
    simulator = build_parser().parse_args(["simulate", "imshop"])
    broker = build_parser().parse_args(["kafka", "start"])

    assert settings.imshop.url == f"http://{simulator.host}:{simulator.port}{simulator.path}"
    assert settings.kafka.bootstrap_servers == f"localhost:{broker.port}"
    assert "--port PORT port to listen on; 0 picks a free one (default: 8090)" in _help(
        capsys, "simulate", "imshop"
    )
    assert "0 picks a free one (default: 9092)" in _help(capsys, "kafka", "start")


def test_run_help_points_to_a_command_that_lists_every_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = _help(capsys, "run")
    assert "`python -m consumer settings --markdown` lists every one" in shown

    assert main(["settings", "--markdown"]) == 0
    table = capsys.readouterr().out
    for name, _, _ in settings_table():
        assert f"| `{name}` |" in table


def test_every_bootstrap_servers_option_checks_the_address_as_the_setting_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = [
        path
        for path, parser in _commands(build_parser())
        if any("--bootstrap-servers" in action.option_strings for action in parser._actions)
    ]
    assert {"demo", "bench", "samples produce", "dlq replay"} <= {" ".join(c) for c in commands}
    required = {("mappings", "diff"): ["--against", "HEAD"]}
    for path in commands:
        command = [*path, *required.get(tuple(path), [])]
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args([*command, "--bootstrap-servers", "host:abc"])
        assert exited.value.code == 2
        assert (
            capsys.readouterr()
            .err.splitlines()[-1]
            .endswith(
                "error: argument --bootstrap-servers: port 'abc' is not a number; "
                "expected host:port[,host:port...], e.g. localhost:9092"
            )
        ), command
        parsed = build_parser().parse_args([*command, "--bootstrap-servers", " a:1, b:2 "])
        assert parsed.bootstrap_servers == "a:1,b:2"
