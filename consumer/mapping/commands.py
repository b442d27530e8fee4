"""``python -m consumer mappings check|render``: the product team's two commands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from consumer.errors import InvalidEvent, MappingLoadError, RenderError
from consumer.events import parse_event
from consumer.mapping.cost import cost_lines
from consumer.mapping.loader import load_mappings
from consumer.mapping.rules import MappingSet
from consumer.push import RenderedPush
from consumer.settings import Settings, load_settings
from consumer.studio.command import register as register_studio

_MAX_EVENT_FILE = 1 << 20


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mappings", help="check mapping templates or preview a push")
    commands = parser.add_subparsers(title="mapping commands", metavar="ACTION", required=True)
    check = commands.add_parser("check", help="check every rule and show what each push costs")
    check.add_argument("dir", nargs="?", type=Path, help="mappings directory (MAPPINGS_DIR)")
    check.set_defaults(func=_check)
    render = commands.add_parser("render", help="show the push one event would give")
    render.add_argument("--event", required=True, type=Path, help="a JSON file with one event")
    render.add_argument("--now", help="pretend it is this time (ISO, with offset)")
    render.add_argument("dir", nargs="?", type=Path, help="mappings directory (MAPPINGS_DIR)")
    render.set_defaults(func=_render)
    register_studio(commands)  # preview and diff: the product team's tools


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


def _check(args: argparse.Namespace) -> int:
    settings, mappings = _load(args)
    if mappings is None:
        return 1
    examples = sum(len(rule.examples) for rule in mappings.rules)
    print(f"ok: {len(mappings.rules)} rules, {examples} examples render as expected")
    print("provider cost of each rule (IMSHOP limits):")
    for line in cost_lines(mappings.rules, settings.imshop):
        print(f"  {line}")
    return 0


def _parse_now(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        now = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--now {text!r} is not a time like 2026-11-25T12:00:00+03:00") from None
    if now.tzinfo is None:
        raise ValueError(f"--now {text!r} needs a UTC offset, e.g. {text}+03:00")
    return now


def _render(args: argparse.Namespace) -> int:
    _, mappings = _load(args)
    if mappings is None:
        return 1
    try:
        now = _parse_now(args.now)
    except ValueError as exc:
        return _show({"error": str(exc)}, 1)
    try:
        raw = args.event.read_bytes()
        event = parse_event(raw, max_bytes=_MAX_EVENT_FILE, extra_types=mappings.extra_types)
        push = mappings.render(event, now=now)
    except OSError as exc:
        return _show({"error": f"cannot read {args.event}: {exc.strerror}"}, 1)
    except InvalidEvent as exc:
        return _show({"error": f"the event is not valid: {exc}"}, 1)
    except RenderError as exc:
        return _show({"error": f"rendering failed: {exc}"}, 1)
    if push is None:
        return _show({"rule": None, "reason": _why_no_rule(mappings, event.event_type)}, 1)
    return _show({"rule": push.rule_id, "push": _push_json(push)}, 0)


def _why_no_rule(mappings: MappingSet, event_type: str) -> str:
    candidates = [r for r in mappings.rules if event_type in r.event_types]
    if not candidates:
        return f"no rule is written for {event_type} events"
    names = ", ".join(f"{r.id} ({r.where})" for r in candidates)
    return f"the conditions of every {event_type} rule are false for this event: {names}"


def _push_json(push: RenderedPush) -> dict[str, Any]:
    return {
        "title": push.message.title,
        "summary": push.message.summary,
        "deeplink": push.message.deeplink,
        "class": push.push_class.value,
        "ttl_s": push.ttl_s,
        "collapse_key": push.collapse_key,
        "extras": dict(push.extras),
    }


def _show(document: dict[str, Any], code: int) -> int:
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return code
