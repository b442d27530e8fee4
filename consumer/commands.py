"""Small commands that need no pipeline: showing the configuration."""

from __future__ import annotations

import argparse
from typing import Any

from consumer.settings import load_settings, settings_table, settings_values


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "settings", help="show the configuration read from the environment (secrets hidden)"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the documented table of every variable"
    )
    parser.set_defaults(func=_settings)


def _settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print("| Variable | Default | Meaning |")
        print("|---|---|---|")
        for name, default, description in settings_table():
            print(f"| `{name}` | `{default}` | {description} |")
        return 0
    for name, value in settings_values(load_settings()):
        print(f"{name}={value}")
    return 0
