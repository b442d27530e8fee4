"""``python -m consumer mappings render``: the pushes sample events give, on a draft.

It loads whatever can be read, renders sample events (a JSON file, JSON Lines,
or stdin) or a rule's own examples (``trial``), and shows each push as a phone
would get it, with lengths, non-breaking spaces marked, the rule's problems and
warnings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from consumer.errors import FatalError, MappingLoadError
from consumer.mapping.loader import read_sources
from consumer.mapping.parse import ttl_text
from consumer.mapping.rules import Rule
from consumer.push import RenderedPush
from consumer.settings import load_settings
from consumer.studio.draft import Draft, load_draft
from consumer.studio.outcome import SPACE_MARK, as_sent, marked
from consumer.studio.trial import (
    Trial,
    parse_now,
    read_events,
    try_event,
    try_example,
)

_MAX_EVENTS_INPUT = 64 << 20


def render(args: argparse.Namespace) -> int:
    """Run ``mappings render`` (its options: ``consumer.studio.command``)."""
    settings = load_settings()
    directory = args.dir or settings.mappings.dir
    try:
        now = parse_now(args.now)
        # read here, so that a directory that cannot be read is an error, not an empty draft
        draft = load_draft(directory, settings.mappings, sources=read_sources(directory))
        trials = _trials(args, draft, now)
    except (ValueError, FatalError) as exc:
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
    if trial.push is not None:
        lines += _push_lines(trial.push, draft)
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
        lines += [f"  rule problem: {problem}" for problem in own]
    return "\n".join(lines)


def _push_lines(push: RenderedPush, draft: Draft) -> list[str]:
    settings = draft.mappings.settings
    lines = []
    for key, limit in (
        ("title", settings.title_max_chars),
        ("summary", settings.summary_max_chars),
    ):
        text = getattr(push.message, key)
        size = f"{len(text)}/{limit}"
        lines.append(f"  {key:<9}{marked(text)}  ({size})")
        if len(text) > limit:
            lines.append(f"  {'':<9}a phone gets «{marked(as_sent(text, limit))}»")
    if push.message.deeplink:
        lines.append(f"  {'deeplink':<9}{push.message.deeplink}")
    if push.shared is not None:
        lines += _shared_lines(push, draft)
    details = f"{push.push_class.value}, ttl {ttl_text(push.ttl_s)}"
    if push.collapse_key:
        details += f", collapse key {push.collapse_key}"
    if push.quiet_hours is not None:
        details += f", quiet hours {push.quiet_hours.text} (the customer's time zone)"
    lines.append(f"  {details}")
    texts = f"{push.message.title}{push.message.summary}"
    if push.shared is not None:
        texts += f"{push.shared.title}{push.shared.summary}"
    if marked(texts) != texts:
        lines.append(f"  ({SPACE_MARK} marks a non-breaking space)")
    return lines


def _shared_lines(push: RenderedPush, draft: Draft) -> list[str]:
    """The shared text, sent instead when the personal push would go out too late."""
    assert push.shared is not None
    settings = draft.mappings.settings
    lines = [
        f"  shared text, sent instead when the personal push would go out more than "
        f"{ttl_text(push.personal_within_s)} after the event:"
    ]
    for key, limit in (
        ("title", settings.title_max_chars),
        ("summary", settings.summary_max_chars),
    ):
        text = getattr(push.shared, key)
        lines.append(f"    {key:<9}{marked(text)}  ({len(text)}/{limit})")
    if push.shared.deeplink:
        lines.append(f"    {'deeplink':<9}{push.shared.deeplink}")
    return lines


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
        document["rule_problems"] = [str(p) for p in draft.problems_of(trial.rule)]
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
        "shared": None
        if push.shared is None
        else {
            "title": push.shared.title,
            "summary": push.shared.summary,
            "deeplink": push.shared.deeplink,
            "personal_within_s": push.personal_within_s,
        },
        "quiet_hours": push.quiet_hours.text if push.quiet_hours is not None else None,
    }
