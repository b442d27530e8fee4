"""Provider simulators: real HTTP servers that follow the documented behaviour.

This package owns the ``simulate`` command. ``register`` adds it and each
module listed in ``SIMULATOR_MODULES`` adds its own subcommand through
``add_parser(sub)`` (``python -m consumer simulate imshop ...``); a new
simulator adds one line to that list.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

SIMULATOR_MODULES = [
    "consumer.local.simulators.imshop",
    "consumer.local.simulators.appmetrica",
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", help="run a push provider simulator")
    sub = parser.add_subparsers(title="simulators", metavar="PROVIDER")
    for name in SIMULATOR_MODULES:
        importlib.import_module(name).add_parser(sub)

    def _usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_usage)
