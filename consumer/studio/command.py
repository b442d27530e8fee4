"""``python -m consumer mappings preview`` and ``mappings diff``: their options.

Registered under ``mappings`` by ``consumer.mapping.commands``; each imports its
module only when run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from consumer.logs import configure_logging
from consumer.settings import LogLevel, Settings, bootstrap_servers_arg, load_settings
from consumer.studio.tail import MAX_RECORDS


def register(commands: Any) -> None:
    """Add ``preview`` and ``diff`` to the ``mappings`` commands."""
    preview = commands.add_parser(
        "preview", help="a live page with every rule's pushes as phone lock-screen cards"
    )
    preview.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    preview.add_argument("--port", type=int, default=8770, help="port (8770; 0 = any free one)")
    preview.add_argument(
        "--token", help="require this token (one is made up when --host is not a loopback address)"
    )
    preview.add_argument(
        "--topic", help="topic suggested for recent events (first of KAFKA_TOPICS)"
    )
    preview.add_argument(
        "--bootstrap-servers",
        type=bootstrap_servers_arg,
        help="brokers (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    preview.add_argument("dir", nargs="?", type=Path, help="mappings directory (MAPPINGS_DIR)")
    preview.set_defaults(func=_preview)

    diff = commands.add_parser(
        "diff", help="which pushes an edit changes: shipped mappings against the edited ones"
    )
    diff.add_argument(
        "--against",
        required=True,
        metavar="REF|DIR",
        help="the shipped mappings: a git ref (main, HEAD, a tag) or a directory",
    )
    events = diff.add_mutually_exclusive_group()
    events.add_argument(
        "--events", type=Path, help="events to render: JSON lines, a JSON list or one object"
    )
    events.add_argument("--from-topic", metavar="TOPIC", help="render the last records of a topic")
    diff.add_argument(
        "--last",
        type=int,
        default=100,
        help=f"with --from-topic: how many (100, at most {MAX_RECORDS})",
    )
    diff.add_argument("--now", help="render as if it were this time (default: each event's time)")
    diff.add_argument("--json", action="store_true", help="print JSON instead of text")
    diff.add_argument(
        "--bootstrap-servers",
        type=bootstrap_servers_arg,
        help="brokers (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    diff.add_argument("dir", nargs="?", type=Path, help="the edited mappings (MAPPINGS_DIR)")
    diff.set_defaults(func=_diff)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}
    return load_settings(kafka=overrides)


def _preview(args: argparse.Namespace) -> int:
    from consumer.studio.preview import Preview, PreviewOptions, needs_token, serve

    settings = _settings(args)
    # stdout carries the address; warnings (a failed refresh) go to stderr
    configure_logging(LogLevel.WARNING, settings.service.log_format, stream=sys.stderr)
    options = PreviewOptions(
        directory=args.dir or settings.mappings.dir,
        host=args.host,
        port=args.port,
        token=args.token,
        topic=args.topic or settings.kafka.topics[0],
    )
    token = needs_token(options)

    def ready(url: str) -> None:
        print(f"Preview of {options.directory} at {url}", flush=True)
        if options.host in ("0.0.0.0", "::"):
            print(
                f"(From another computer, use this computer's name or address for {options.host}.)",
                flush=True,
            )
        print("It follows the files as you save them. Ctrl-C stops it.", flush=True)

    try:
        asyncio.run(serve(Preview(options, settings), token, ready=ready))
    except OSError as exc:  # the port is taken, the address is not ours
        print(
            f"error: cannot listen on {options.host}:{options.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    return 0


def _diff(args: argparse.Namespace) -> int:
    from consumer.studio.diff import DiffOptions, print_diff, run_diff

    settings = _settings(args)
    options = DiffOptions(
        edited=args.dir or settings.mappings.dir,
        against=args.against,
        events_file=args.events,
        topic=args.from_topic,
        last=args.last,
        now=_parse_now(args.now),
    )
    report = asyncio.run(run_diff(options, settings))
    print_diff(report, sys.stdout, as_json=args.json)
    return 1 if report.new_failures else 0


def _parse_now(text: str | None) -> dt.datetime | None:
    from consumer.errors import SettingsError

    if not text:
        return None
    try:
        now = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(
            f"--now {text!r} is not a time like 2026-11-25T12:00:00+03:00"
        ) from None
    if now.tzinfo is None:
        raise SettingsError(f"--now {text!r} needs a UTC offset, e.g. {text}+03:00")
    return now
