"""The command line: ``python -m consumer <command>``.

Each command lives in the module that does the work; that module's
``register(subparsers)`` adds its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from consumer import __version__
from consumer.errors import FatalError

COMMAND_MODULES = [
    "consumer.app",
    "consumer.commands",
    "consumer.mapping.commands",
    "consumer.local.kafka",
    "consumer.local.samples",
    "consumer.local.simulators",
    "consumer.local.demo",
    "consumer.replay.command",
    "consumer.history.command",
    "consumer.local.bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        description="Kafka order and bonus events to push notifications.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except FatalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:  # e.g. no broker at the address given
        print(f"error: Kafka: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head` closed the pipe: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
