"""The command line: ``python -m consumer <command>``.

Each command lives in the module that does the work; that module's
``register(subparsers)`` adds its parser and sets ``func(args) -> int``.
Every parser in the tree is a ``CommandParser``, so every option's help shows
its default the same way.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaError

from consumer import __version__
from consumer.errors import FatalError

COMMAND_MODULES = [
    "consumer.app",
    "consumer.commands",
    "consumer.studio.command",
    "consumer.local.kafka",
    "consumer.local.samples",
    "consumer.local.simulators",
    "consumer.local.demo",
    "consumer.replay.command",
    "consumer.reports.command",
    "consumer.history.command",
    "consumer.local.bench",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, unless there is no default to show
    (unset, a flag that is off) or the help already says "(default: ...)"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if (
            default is None
            or default is False
            or default == []
            or "(default:" in (action.help or "")
        ):
            return action.help
        return super()._get_help_string(action)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser with ``HelpFormatter``; its subcommands' parsers are ones too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m consumer",
        description="Kafka order and bonus events to push notifications. Every command has --help.",
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
