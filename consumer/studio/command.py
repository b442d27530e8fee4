"""``python -m consumer mappings preview``: its options.

Registered under ``mappings`` by ``consumer.mapping.commands``; each imports its
module only when run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from consumer.settings import Settings, load_settings


def register(commands: Any) -> None:
    """Add ``preview`` to the ``mappings`` commands."""
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
    preview.add_argument("--bootstrap-servers", help="brokers (default: $KAFKA_BOOTSTRAP_SERVERS)")
    preview.add_argument("dir", nargs="?", type=Path, help="mappings directory (MAPPINGS_DIR)")
    preview.set_defaults(func=_preview)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"bootstrap_servers": args.bootstrap_servers} if args.bootstrap_servers else {}
    return load_settings(kafka=overrides)


def _preview(args: argparse.Namespace) -> int:
    from consumer.studio.preview import Preview, PreviewOptions, needs_token, serve

    settings = _settings(args)
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
