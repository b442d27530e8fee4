"""``python -m consumer mappings``: the product team's commands and their options.

``check`` is all or nothing, like the service, and shows what each push costs;
``render`` shows the push sample events give, even on a draft (``render``);
``preview`` serves a live page of every rule's pushes (``preview``); ``diff``
lists what an edit changes before it ships (``diff``). Each imports the module
that does its work only when run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from consumer.errors import MappingLoadError
from consumer.logs import configure_logging
from consumer.mapping import MappingSet, load_mappings
from consumer.settings import LogLevel, Settings, bootstrap_servers_arg, load_settings
from consumer.studio.tail import MAX_RECORDS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mappings", help="check mapping templates or preview a push")
    commands = parser.add_subparsers(title="mapping commands", metavar="ACTION", required=True)
    _add_check(commands)
    _add_render(commands)
    _add_preview(commands)
    _add_diff(commands)


def _add_check(commands: Any) -> None:
    check = commands.add_parser("check", help="check every rule and show what each push costs")
    check.add_argument(
        "--recipients",
        type=_positive,
        help="also count the requests and time a send to this many recipients takes",
    )
    check.add_argument(
        "--distinct",
        type=_positive,
        help="with --recipients: how many different values (amounts, dates) they have",
    )
    check.add_argument("--rule", help="show the cost of this rule only (id, or file:id)")
    check.add_argument("dir", nargs="?", type=Path, help="mappings directory (MAPPINGS_DIR)")
    check.set_defaults(func=_check)


def _add_render(commands: Any) -> None:
    render = commands.add_parser(
        "render",
        help="show the push sample events give, even while the mappings are a draft",
        description=(
            "Render sample events, or a rule's own examples, with the mappings as they are "
            "now (rules that cannot be read are left out). The moment is --now, else an "
            "example's now:, else the event's occurred_at, else the current time."
        ),
    )
    source = render.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--event",
        type=Path,
        help="a JSON file with one event, a JSON list, or JSON Lines; - reads stdin",
    )
    source.add_argument("--rule", help="render this rule's examples (id, or file:id)")
    render.add_argument("--json", action="store_true", help="one JSON object per sample")
    render.add_argument("--now", help="pretend it is this time (ISO, with offset)")
    render.add_argument("dir", nargs="?", type=Path, help="mappings directory (MAPPINGS_DIR)")
    render.set_defaults(func=_render)


def _add_preview(commands: Any) -> None:
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


def _add_diff(commands: Any) -> None:
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


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return number


def _check(args: argparse.Namespace) -> int:
    from consumer.studio.cost import Volume, cost_lines

    if args.distinct is not None and args.recipients is None:
        print("error: --distinct counts values among --recipients; give both", file=sys.stderr)
        return 2
    settings, mappings = _load(args)
    if mappings is None:
        return 1
    rules = [r for r in mappings.rules if args.rule in (None, r.id, r.rule_id)]
    if not rules:
        print(f"error: --rule {args.rule}: no such rule", file=sys.stderr)
        return 2
    examples = sum(len(rule.examples) for rule in mappings.rules)
    print(f"ok: {len(mappings.rules)} rules, {examples} examples render as expected")
    print("provider cost of each rule (IMSHOP limits):")
    volume = Volume(args.recipients, args.distinct) if args.recipients else None
    lines = cost_lines(
        rules,
        settings.imshop,
        volume=volume,
        marketing_share=settings.dispatch.marketing_min_share,
    )
    for line in lines:
        print(f"  {line}")
    return 0


def _load(args: argparse.Namespace) -> tuple[Settings, MappingSet | None]:
    settings = load_settings()
    directory = args.dir or settings.mappings.dir
    try:
        return settings, load_mappings(directory, settings.mappings)
    except MappingLoadError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) in {directory}", file=sys.stderr)
        return settings, None


def _render(args: argparse.Namespace) -> int:
    from consumer.studio.render import render

    return render(args)


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
    from consumer.studio.trial import parse_now

    settings = _settings(args)
    options = DiffOptions(
        edited=args.dir or settings.mappings.dir,
        against=args.against,
        events_file=args.events,
        topic=args.from_topic,
        last=args.last,
        now=parse_now(args.now),
    )
    report = asyncio.run(run_diff(options, settings))
    print_diff(report, sys.stdout, as_json=args.json)
    return 1 if report.new_failures else 0
