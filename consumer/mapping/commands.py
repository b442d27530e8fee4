"""``python -m consumer mappings check|render``: the product team's two commands.

``check`` is all or nothing, like the service. ``render`` looks at a draft: it
loads whatever can be read, renders sample events (a JSON file, JSON Lines, or
stdin) or a rule's own examples, and shows each push as a phone would get it,
with lengths, non-breaking spaces marked, the rule's problems and warnings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from consumer.errors import MappingLoadError
from consumer.mapping.cost import Volume, cost_lines
from consumer.mapping.loader import Draft, load_draft, load_mappings
from consumer.mapping.parse import ttl_text
from consumer.mapping.rules import MappingSet, Rule
from consumer.mapping.trial import Trial, read_events, shown, try_event, try_example
from consumer.push import RenderedPush
from consumer.settings import Settings, load_settings
from consumer.studio.command import register as register_studio

_MAX_EVENTS_INPUT = 64 << 20
NBSP_MARK = "°"  # as word processors show a non-breaking space
_NBSPS = str.maketrans({"\u00a0": NBSP_MARK, "\u202f": NBSP_MARK})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mappings", help="check mapping templates or preview a push")
    commands = parser.add_subparsers(title="mapping commands", metavar="ACTION", required=True)
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


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return number


def _check(args: argparse.Namespace) -> int:
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
    settings = load_settings()
    directory = args.dir or settings.mappings.dir
    try:
        now = _parse_now(args.now)
        draft = load_draft(directory, settings.mappings)
        trials = _trials(args, draft, now)
    except (ValueError, MappingLoadError) as exc:
        message = "; ".join(exc.problems) if isinstance(exc, MappingLoadError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1
    if draft.problems:
        print(
            f"note: the mappings in {directory} have {len(draft.problems)} problem(s), "
            "`mappings check` lists them; rules that cannot be read are left out",
            file=sys.stderr,
        )
    for trial in trials:
        print(_json(trial, draft) if args.json else _text(trial, draft))
    return 0 if trials and all(t.ok for t in trials) else 1


def _trials(args: argparse.Namespace, draft: Draft, now: dt.datetime | None) -> list[Trial]:
    if args.rule:
        rule = _find_rule(draft, args.rule)
        return [try_example(draft, rule, example) for example in rule.examples]
    source = "stdin" if str(args.event) == "-" else str(args.event)
    try:
        data = (
            sys.stdin.buffer.read(_MAX_EVENTS_INPUT)
            if source == "stdin"
            else args.event.read_bytes()
        )
    except OSError as exc:
        raise ValueError(f"cannot read {args.event}: {exc.strerror}") from None
    trials = []
    for label, raw in read_events(data, source):
        if isinstance(raw, str):
            trials.append(Trial(label=label, now=now or dt.datetime.now(dt.UTC), error=raw))
        else:
            trials.append(try_event(draft, raw, label=label, now=now))
    if not trials:
        raise ValueError(f"{source} holds no event")
    return trials


def _find_rule(draft: Draft, wanted: str) -> Rule:
    found = [r for r in draft.mappings.rules if wanted in (r.id, r.rule_id)]
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(r.rule_id for r in found)
        raise ValueError(f"--rule {wanted}: several rules have this id ({names}); write file:id")
    known = ", ".join(r.id for r in draft.mappings.rules) or "none can be read"
    unread = "; a rule that cannot be read is left out: `mappings check` says why"
    raise ValueError(
        f"--rule {wanted}: no such rule (rules: {known}){unread if draft.problems else ''}"
    )


def _text(trial: Trial, draft: Draft) -> str:
    lines = [
        f"{trial.label}: "
        + (f"rule {trial.rule.id} ({trial.rule.where})" if trial.rule else "no push")
    ]
    push = trial.push
    if push is not None:
        settings = draft.mappings.settings
        for key, limit in (
            ("title", settings.title_max_chars),
            ("summary", settings.summary_max_chars),
        ):
            text = getattr(push.message, key)
            size = f"{len(text)}/{limit}"
            lines.append(f"  {key:<9}{_marked(text)}  ({size})")
            if len(text) > limit:
                lines.append(f"  {'':<9}a phone gets «{_marked(shown(push, key, limit))}»")
        if push.message.deeplink:
            lines.append(f"  {'deeplink':<9}{push.message.deeplink}")
        details = f"{push.push_class.value}, ttl {ttl_text(push.ttl_s)}"
        if push.collapse_key:
            details += f", collapse key {push.collapse_key}"
        lines.append(f"  {details}")
        if any(mark in f"{push.message.title}{push.message.summary}" for mark in "\u00a0\u202f"):
            lines.append(f"  ({NBSP_MARK} marks a non-breaking space)")
    moment = f"  at {trial.now.isoformat()}"
    if trial.filled:
        moment += f"; filled in for the preview: {', '.join(trial.filled)}"
    lines.append(moment)
    if trial.error:
        lines.append("  error: " + trial.error.replace("\n", "\n    "))
    lines += [f"  warning: {warning}" for warning in trial.warnings]
    lines += [f"  differs: {difference}" for difference in trial.differences]
    if trial.rule is not None and not trial.differences:
        own = draft.problems_of(trial.rule)
        lines += [f"  rule problem: {file}:{line}: {text}" for file, line, text in own]
    return "\n".join(lines)


def _marked(text: str) -> str:
    return text.translate(_NBSPS)


def _json(trial: Trial, draft: Draft) -> str:
    document: dict[str, Any] = {
        "source": trial.label,
        "rule": trial.rule.rule_id if trial.rule else None,
        "now": trial.now.isoformat(),
        "filled": trial.filled,
    }
    if trial.push is not None:
        settings = draft.mappings.settings
        document["push"] = _push_json(trial.push)
        document["lengths"] = {
            "title": [len(trial.push.message.title), settings.title_max_chars],
            "summary": [len(trial.push.message.summary), settings.summary_max_chars],
        }
    if trial.error:
        document["error" if trial.rule or trial.event is None else "reason"] = trial.error
    document["warnings"] = trial.warnings
    document["differences"] = trial.differences
    if trial.rule is not None:
        document["rule_problems"] = [f"{f}:{n}: {t}" for f, n, t in draft.problems_of(trial.rule)]
    return json.dumps(document, ensure_ascii=False)


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
