"""``python -m consumer demo``: the whole pipeline in one process, in about a minute.

A local Kafka broker (or ``KAFKA_BOOTSTRAP_SERVERS``), fresh uniquely named topics,
the IMSHOP simulator and the service run in one event loop; sample order and
bonus events plus a few malformed records are published, every push is shown as
the simulator receives it; then a rush of orders shows shared texts taking over
and handing back (``demo_rush``), and the run ends by itself with a summary. Time
is compressed: the real limit of 10 requests per 60 s becomes 10 per
``window_s``, and the rules' ttl and personal_within shrink alike. Everything
started is stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from consumer.app import Service
from consumer.errors import FatalError
from consumer.local.demo_history import busiest_customer, fetch_history, print_history
from consumer.local.demo_rush import Rush, record, rush_lines, shared_texts, text_of
from consumer.local.demo_view import DemoSummary, print_summary
from consumer.local.kafka import LocalKafka
from consumer.local.kafka_topics import create_topics, delete_topics
from consumer.local.rush import compressed_mappings, daytime_zone
from consumer.local.samples import publish, sample_events, to_record
from consumer.local.simulators.imshop import ImshopSimulator, PushPrinter, SimulatorConfig
from consumer.logs import configure_logging
from consumer.mapping import load_mappings
from consumer.mapping.parse import BONUS_QUIET_HOURS, PERSONAL_WITHIN_S
from consumer.push import DEFAULT_ZONE, PushClass
from consumer.replay.command import replay
from consumer.replay.select import DeadLetter, ReplayFilter
from consumer.settings import (
    KafkaSettings,
    LogFormat,
    Settings,
    bootstrap_servers_arg,
    load_settings,
)

REAL_WINDOW_S = 60.0
TRICKLE = 3  # orders after the rush, a few seconds apart
API_KEY = "demo-key"
POLL_S = 0.1
READY_S = 60.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    events: int = 300
    campaign: int = 400
    window_s: float = 6.0
    rate_limit: int = 10
    rush: int = 60  # orders handed to the courier at once, after the samples
    max_seconds: float = 120.0
    quiet: bool = False
    bootstrap_servers: str | None = None
    topics_prefix: str = "demo"
    mappings_dir: Path | None = None
    seed: int = 7


@dataclass(frozen=True, slots=True)
class DemoTopics:
    orders: str
    bonus: str
    dlq: str
    group: str

    @classmethod
    def fresh(cls, prefix: str) -> DemoTopics:
        run = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return cls(f"{run}-orders", f"{run}-bonus", f"{run}-dead-letter", f"{run}-group")


@dataclass(frozen=True, slots=True)
class _Say:
    out: TextIO
    quiet: bool = False

    def __call__(self, text: str, *, always: bool = False) -> None:
        if always or not self.quiet:
            print(text, file=self.out, flush=True)


def log_path() -> Path:
    """The service's log of the last demo run (overwritten by the next one)."""
    return Path.home() / ".cache" / "order-push-consumer" / "demo" / "service.log"


def default_mappings_dir() -> Path:
    """The repository's mappings when run from a checkout, else ``MAPPINGS_DIR``."""
    beside_package = Path(__file__).resolve().parents[1] / "mappings"
    return beside_package if beside_package.is_dir() else load_settings().mappings.dir


def demo_settings(
    options: DemoOptions,
    bootstrap: str,
    topics: DemoTopics,
    push_url: str,
    history_dir: Path,
    mappings_dir: Path,
) -> Settings:
    """``mappings_dir``: the rules with their times compressed like the window."""
    scale = options.window_s / REAL_WINDOW_S
    return load_settings(
        kafka={
            "bootstrap_servers": bootstrap,
            "topics": [topics.orders, topics.bonus],
            "group_id": topics.group,
            "group_instance_id": None,
            "dlq_topic": topics.dlq,
            "commit_interval_s": 0.5,
            "session_timeout_ms": 10_000,
        },
        imshop={
            "url": push_url,
            "api_key": API_KEY,
            "rate_limit_requests": options.rate_limit,
            "rate_limit_window_s": options.window_s,
            "rate_limit_margin_s": max(0.05, 1.0 * scale),
            "assume_window_used_at_start": False,  # the simulator starts with an empty window
            "timeout_s": 5.0,
        },
        dispatch={"retry_initial_backoff_s": 0.2, "retry_max_backoff_s": 2.0},
        mappings={"dir": mappings_dir},
        # The run's own history, served with a token made for the run (the demo asks
        # for one customer's history at the end, as IMSHOP would).
        history={
            "database_url": f"sqlite:///{history_dir / 'history.sqlite3'}",
            "port": 0,
            "auth_token": secrets.token_urlsafe(24),
        },
        service={"push_provider": "imshop", "health_port": 0, "shutdown_grace_s": 5.0},
    )


def campaign_events(count: int, now: dt.datetime) -> list[dict[str, Any]]:
    """The samples' bonus campaign sent to more customers: the same text, so one request."""
    expires = (now + dt.timedelta(days=7)).date().isoformat()
    return [
        {
            "event_id": f"campaign-{index}",
            "event_type": "bonus.expiring",
            "occurred_at": now.isoformat(),
            "recipient": {"user_id": f"7998{index:07d}"},
            "bonus": {"amount": 500, "expires_at": expires},
        }
        for index in range(count)
    ]


def demo_records(options: DemoOptions, topics: DemoTopics) -> list[tuple[str, bytes, bytes]]:
    """Samples and the campaign (``occurred_at`` = now), then two malformed records."""
    now = dt.datetime.now(dt.UTC)
    events = [*sample_events(options.events, seed=options.seed, now=now)]
    events += campaign_events(options.campaign, now)
    if BONUS_QUIET_HOURS.contains(now, DEFAULT_ZONE):
        # Night in Moscow: the bonus offers would wait for the morning (quiet hours),
        # and the demo with them. Its customers live where it is day.
        zone = daytime_zone(now)
        for event in events:
            if event["event_type"].startswith("bonus."):
                event["timezone"] = zone
    records = []
    for event in events:
        record = to_record(event, orders_topic=topics.orders, bonus_topic=topics.bonus)
        records.append((record.topic, record.key, record.value))
    records.append((topics.orders, b"A-broken", b'{"event_id": "broken-1", "event_type": "or'))
    records.append(
        (
            topics.orders,
            b"A-nouser",
            b'{"event_id": "broken-2", "event_type": "order.status_changed",'
            b' "occurred_at": "2026-01-01T00:00:00Z", "order": {"id": "A-nouser"}}',
        )
    )
    return records


async def run_demo(options: DemoOptions, out: TextIO) -> DemoSummary:
    """Run the demo; on cancellation (Ctrl-C) say what was stopped and removed, then re-raise."""
    say = _Say(out, options.quiet)
    cleaned: list[str] = []
    try:
        return await _run(options, say, cleaned)
    except asyncio.CancelledError:
        say("\nInterrupted. Cleaned up:", always=True)
        for line in cleaned or ["nothing was started yet"]:
            say(f"  - {line}", always=True)
        raise


async def _run(options: DemoOptions, say: _Say, cleaned: list[str]) -> DemoSummary:
    """``cleaned`` gets a line as each part is stopped or removed (exit order)."""
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        # Each note is registered before its part, so it is added just after the part closes.
        bootstrap = options.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap:  # checked as the service checks it, before anything starts
            bootstrap = load_settings(
                kafka={"bootstrap_servers": bootstrap}
            ).kafka.bootstrap_servers
        else:
            say("Starting a local Kafka broker (the first run fetches its jars with Maven)...")
            stack.callback(cleaned.append, "stopped the local Kafka broker and removed its data")
            kafka = await stack.enter_async_context(LocalKafka())
            bootstrap = kafka.bootstrap_servers
        topics = DemoTopics.fresh(options.topics_prefix)
        names = [topics.orders, topics.bonus, topics.dlq]
        stack.callback(cleaned.append, f"deleted the topics {', '.join(names)}")
        stack.push_async_callback(delete_topics, bootstrap, names)
        await create_topics(bootstrap, {topics.orders: 3, topics.bonus: 3, topics.dlq: 1})
        stack.callback(cleaned.append, "stopped the IMSHOP simulator")
        simulator = await stack.enter_async_context(
            ImshopSimulator(
                SimulatorConfig(
                    api_key=API_KEY, rate_limit=options.rate_limit, window_s=options.window_s
                )
            )
        )
        history_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-")))
        mappings_dir = compressed_mappings(
            options.mappings_dir or default_mappings_dir(),
            history_dir / "mappings",
            REAL_WINDOW_S / options.window_s,
        )
        settings = demo_settings(
            options, bootstrap, topics, simulator.url, history_dir, mappings_dir
        )
        say(_intro(options, bootstrap, topics, simulator.url))
        records = demo_records(options, topics)
        # Published before the service starts, as after a deploy: the backlog shows
        # coalescing (one request for the whole campaign) and supersession at once.
        await publish(settings.kafka, records)
        say(
            f"Published {len(records)} events: {options.events} sample orders and bonuses, "
            f"a bonus campaign to {options.campaign} customers, 2 malformed records."
        )
        rush = Rush.of(options.rush, TRICKLE if options.rush else 0, topics.group)
        rules = load_mappings(mappings_dir, settings.mappings)
        shared = shared_texts(rules, _events(records) + rush.burst + rush.trickle)
        printer = PushPrinter(
            simulator,
            say.out,
            window_s=options.window_s,
            quiet=options.quiet,
            label=lambda push: "shared text" if text_of(push) in shared else None,
        )
        stack.callback(
            cleaned.append, "stopped the service (what it had finished is committed in Kafka)"
        )
        service = await stack.enter_async_context(Service(settings).serving(READY_S))
        running = service.run_task
        assert running is not None  # serving() set it
        say("The service is running; pushes as the simulator receives them:\n")
        deadline = time.monotonic() + options.max_seconds
        finished = await _watch(service, running, printer, len(records), deadline)
        produced = len(records)
        if finished and options.rush:
            produced += len(rush.burst) + len(rush.trickle)
            finished = await _rush(
                options,
                rush,
                settings,
                topics,
                (service, running, printer),
                len(records),
                deadline,
                say,
            )
        if not finished:
            say(f"Stopping: the {options.max_seconds:g} s limit was reached.", always=True)
        customer = busiest_customer(value for _topic, _key, value in records)
        history = await _history_of(service, settings, customer)
        dead_lettered = await read_dead_letters(settings.kafka, topics.dlq)
    printer.show_new()  # pushes sent while draining
    summary = DemoSummary.collect(
        service,
        simulator,
        produced=produced,
        wall_s=time.monotonic() - started,
        dead_lettered=dead_lettered,
    )
    print_summary(summary, say.out, window_s=options.window_s, limit=options.rate_limit)
    if options.rush and not options.quiet:
        within = PERSONAL_WITHIN_S[PushClass.TRANSACTIONAL]
        lines = rush_lines(
            rush,
            simulator.pushes,
            shared,
            within_s=within * options.window_s / REAL_WINDOW_S,
            real_within_s=within,
        )
        say("\n" + "\n".join(lines))
    if customer is not None and history is not None and not options.quiet:
        print_history(customer, history, say.out)
    if not summary.clean:
        say("The demo did not finish cleanly; see the log above.", always=True)
    return summary


async def _history_of(
    service: Service, settings: Settings, customer: str | None
) -> list[dict[str, Any]] | None:
    if customer is None or service.history_port is None:
        return None
    token = settings.history.auth_token.get_secret_value()
    return await fetch_history(service.history_port, token, customer)


async def read_dead_letters(kafka: KafkaSettings, topic: str) -> list[DeadLetter]:
    """The dead-letter topic's records, read the way ``dlq replay --dry-run`` reads them."""
    letters: list[DeadLetter] = []
    await replay(
        kafka, topic, ReplayFilter(), dry_run=True, on_match=lambda d, _: letters.append(d)
    )
    return letters


def _intro(options: DemoOptions, bootstrap: str, topics: DemoTopics, push_url: str) -> str:
    return (
        f"Kafka: {bootstrap}  topics: {topics.orders}, {topics.bonus}  "
        f"dead letters: {topics.dlq}\n"
        f"IMSHOP simulator: {push_url}\n"
        f"Budget scaled {REAL_WINDOW_S / options.window_s:g}x for the demo: "
        f"{options.rate_limit} requests per {options.window_s:g} s "
        f"(IMSHOP allows {options.rate_limit} per {REAL_WINDOW_S:g} s); the rules' ttl and "
        "personal_within are scaled alike.\n"
    )


async def _rush(
    options: DemoOptions,
    rush: Rush,
    settings: Settings,
    topics: DemoTopics,
    running: tuple[Service, asyncio.Task[None], PushPrinter],
    before: int,
    deadline: float,
    say: _Say,
) -> bool:
    """Publish the rush at once, then the trickle a few seconds apart; True if all of it
    was settled before the deadline."""
    service, task, printer = running
    say(f"\nA rush: {len(rush.burst)} orders handed to the courier at once.\n")
    await publish(settings.kafka, [record(e, topics.orders) for e in rush.burst])
    expected = before + len(rush.burst)
    if not await _watch(service, task, printer, expected, deadline):
        return False
    await asyncio.sleep(options.window_s)  # the budget recovers: a quiet moment
    say(f"\nAfter the rush: {len(rush.trickle)} orders, a few seconds apart.\n")
    for event in rush.trickle:
        await publish(settings.kafka, [record(event, topics.orders)])
        expected += 1
        if not await _watch(service, task, printer, expected, deadline):
            return False
        await asyncio.sleep(options.window_s / 3)
    return True


def _events(records: list[tuple[str, bytes, bytes]]) -> list[dict[str, Any]]:
    """The published events that are JSON objects (the malformed ones are not)."""
    found = []
    for _topic, _key, value in records:
        try:
            event = json.loads(value)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


async def _watch(
    service: Service,
    running: asyncio.Task[None],
    printer: PushPrinter,
    expected: int,
    deadline: float,
) -> bool:
    """Print pushes until every event has its outcome and dead letters are written.

    Raced against the service: if it ends early, its error ends the demo at once.
    """
    while time.monotonic() < deadline:
        printer.show_new()
        if DemoSummary.settled(service, expected):
            return True
        await asyncio.wait({running}, timeout=POLL_S)
        if running.done():
            running.result()  # the service's error
            raise FatalError("the service stopped before every event had its outcome")
    return False


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run Kafka, the IMSHOP simulator and the service on sample events"
    )
    defaults = DemoOptions()
    parser.add_argument("--events", type=int, default=defaults.events, help="sample events")
    parser.add_argument(
        "--campaign",
        type=int,
        default=defaults.campaign,
        help="extra customers of the sample bonus campaign (one push text for all)",
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=defaults.window_s,
        help="the rate-limit window in seconds (IMSHOP's is 60; the demo compresses it)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=defaults.max_seconds,
        help="stop after this long once Kafka is up, even if events are still pending",
    )
    parser.add_argument(
        "--rush",
        type=int,
        default=defaults.rush,
        help="orders handed to the courier at once after the samples (0: no rush)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--bootstrap-servers",
        type=bootstrap_servers_arg,
        help="use this broker (default: $KAFKA_BOOTSTRAP_SERVERS or local)",
    )
    parser.add_argument(
        "--topics-prefix",
        default=defaults.topics_prefix,
        help="start of the run's topic and group names (a random suffix keeps re-runs apart)",
    )
    parser.add_argument("--mappings", type=Path, help="mappings directory to use")
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="the sample events' random seed: the same seed, the same events and figures",
    )
    parser.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    options = DemoOptions(
        events=args.events,
        campaign=args.campaign,
        window_s=args.window_s,
        rush=args.rush,
        max_seconds=args.max_seconds,
        quiet=args.quiet,
        bootstrap_servers=args.bootstrap_servers,
        topics_prefix=args.topics_prefix,
        mappings_dir=args.mappings,
        seed=args.seed,
    )
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # One log, overwritten each run; kept open until the process ends, as the
    # service logs until its last moment.
    log_file = path.open("w", encoding="utf-8")
    configure_logging("info", LogFormat.JSON, stream=log_file)
    print(f"Service logs: {path}", flush=True)
    summary = asyncio.run(run_demo(options, sys.stdout))
    return 0 if summary.clean else 1
