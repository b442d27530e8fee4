"""``python -m consumer bench``: ingest, budget, latency, memory, AppMetrica, history, reach.

Not part of the tests' pass/fail: it measures, prints a summary and optionally
writes every figure as JSON. It starts its own Kafka broker (``LocalKafka``)
unless ``--bootstrap-servers`` names one (its topics are deleted at the end
then), and runs the IMSHOP simulator itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from consumer.local.bench.report import environment, summary
from consumer.settings import bootstrap_servers_arg

SECTIONS = ("ingest", "budget", "latency", "memory", "appmetrica", "history", "reach")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure ingest, budget efficiency, latency, memory, AppMetrica, history lookups "
        "and reach in a rush hour",
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (a few minutes)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--bootstrap-servers",
        type=bootstrap_servers_arg,
        help="use this broker instead of starting one",
    )
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only these parts (repeatable)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from consumer.local.bench.support import quiet_logs

    quiet_logs()
    figures = asyncio.run(_bench(args.bootstrap_servers, args.quick, args.only or SECTIONS))
    print(summary(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        print(f"figures written to {args.json}", file=sys.stderr)
    return 0


async def _bench(bootstrap: str | None, quick: bool, sections: Any) -> dict[str, Any]:
    from consumer.local.bench.support import own_topics_deleted
    from consumer.local.kafka import LocalKafka

    if not set(sections) & {"ingest", "latency", "memory", "reach"}:
        return await _sections("", quick, sections)  # budget and history need no broker
    if bootstrap is not None:
        async with own_topics_deleted(bootstrap):
            return await _sections(bootstrap, quick, sections)
    async with LocalKafka() as kafka:
        return await _sections(kafka.bootstrap_servers, quick, sections)


async def _sections(bootstrap: str, quick: bool, sections: Any) -> dict[str, Any]:
    from consumer.local.bench import appmetrica, budget, history, ingest, latency, memory, reach

    figures: dict[str, Any] = {"quick": quick, **environment()}
    if "ingest" in sections:
        _progress("ingest")
        figures |= await ingest.measure(
            bootstrap, events=50_000 if quick else 200_000, pairs=2 if quick else 5
        )
    if "budget" in sections:
        _progress("budget")
        figures |= await budget.measure()
    if "latency" in sections:
        _progress("latency")
        figures |= await latency.measure(bootstrap, events=200 if quick else 1000)
    if "memory" in sections:
        _progress("memory")
        figures |= await memory.measure(bootstrap, backlog=200_000 if quick else 1_000_000)
    if "appmetrica" in sections:
        _progress("appmetrica")
        figures |= await appmetrica.measure(events=4000, pairs=1 if quick else 2)
    if "history" in sections:
        _progress("history")
        figures |= await history.measure(
            items_total=200_000 if quick else 1_000_000, lookups=500 if quick else 2_000
        )
    if "reach" in sections:
        _progress("reach")
        figures |= await reach.measure(
            bootstrap, rates=(500,) if quick else (500, 5000), minutes=20.0 if quick else 40.0
        )
    return figures


def _progress(section: str) -> None:
    print(f"bench: {section}...", file=sys.stderr, flush=True)
