"""``python -m consumer mappings diff``: what an edit changes, before it ships.

The same events are rendered with the shipped mappings (a git ref, read with
``git show``, or a directory) and with the edited ones, as the service would
render them: the first rule that matches. The report lists the pushes that
change (before → after), the events that would now fail (the service would
dead-letter them), those no longer sent or newly sent, and what the change
costs in provider requests.

The events are every rule's examples (both versions'), a file of events, or the
last records of a Kafka topic.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from consumer.errors import FatalError
from consumer.mapping.examples import example_event
from consumer.mapping.filters import NARROW_NBSP, NBSP
from consumer.mapping.loader import MAPPING_SUFFIXES, read_sources
from consumer.settings import ImshopSettings, Settings
from consumer.studio.draft import Draft, load_draft
from consumer.studio.outcome import (
    SPACE_MARK,
    Outcome,
    Renderer,
    cost_of,
    fill_preview_fields,
    marked,
    variants,
)
from consumer.studio.tail import read_last
from consumer.studio.trial import read_events

_PUSH_FIELDS = ("title", "summary", "deeplink", "class", "ttl_s", "collapse_key")


@dataclass(frozen=True, slots=True)
class DiffOptions:
    edited: Path
    against: str
    events_file: Path | None = None
    topic: str | None = None
    last: int = 100
    now: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One event to render with both versions."""

    label: str
    document: dict[str, Any] | None = None  # a JSON event (missing common fields filled)
    raw: bytes | None = None  # a Kafka record's value, as the service gets it
    problem: str | None = None  # the sample could not even be read
    now: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Change:
    label: str
    before: dict[str, Any]
    after: dict[str, Any]

    def fields(self) -> list[tuple[str, Any, Any]]:
        """Each part of the push that differs: (name, before, after)."""
        names = [*_PUSH_FIELDS, "rule", "shared"]
        return [
            (name, self.before.get(name), self.after.get(name))
            for name in names
            if self.before.get(name) != self.after.get(name)
        ]

    def as_json(self) -> dict[str, Any]:
        return {"event": self.label, "before": self.before, "after": self.after}


@dataclass(slots=True)
class DiffReport:
    shipped: dict[str, Any]
    edited: dict[str, Any]
    source: str
    events: int = 0
    changed: list[Change] = field(default_factory=list)
    new_failures: list[Change] = field(default_factory=list)
    no_longer_sent: list[Change] = field(default_factory=list)
    now_sent: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    still_failing: list[Change] = field(default_factory=list)
    unchanged: int = 0
    cost: list[dict[str, Any]] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        lists = ("changed", "new_failures", "no_longer_sent", "now_sent", "fixed", "still_failing")
        return {
            "shipped": self.shipped,
            "edited": self.edited,
            "events": {"source": self.source, "count": self.events},
            **{name: [c.as_json() for c in getattr(self, name)] for name in lists},
            "unchanged": self.unchanged,
            "cost": {"rules": self.cost, "requests": self.requests},
        }


async def run_diff(options: DiffOptions, settings: Settings) -> DiffReport:
    label, sources = shipped_sources(options.against, options.edited)
    shipped = load_draft(Path(label), settings.mappings, sources=sources)
    edited = load_draft(options.edited, settings.mappings)
    samples, source = await _samples(options, settings, shipped, edited)
    report = DiffReport(_about(shipped, label), _about(edited, str(options.edited)), source)
    before = Renderer(shipped.mappings, settings.mappings)
    after = Renderer(edited.mappings, settings.mappings)
    sent: tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]] = (Counter(), Counter())
    for sample in samples:
        old = _side(_outcome(before, sample, settings), before)
        new = _side(_outcome(after, sample, settings), after)
        _classify(report, Change(sample.label, old, new))
        for counter, side in zip(sent, (old, new), strict=True):
            if "title" in side:
                counter[(side["title"], side["summary"], side["deeplink"])] += 1
    report.events = len(samples)
    report.cost = _cost_changes(shipped, edited, settings.imshop)
    report.requests = _requests(sent, settings.imshop)
    return report


def _about(draft: Draft, label: str) -> dict[str, Any]:
    return {
        "mappings": label,
        "rules": len(draft.rules),
        "problems": [str(p) for p in draft.problems],
    }


# ---- the shipped mappings: a directory, or a git ref ----


def shipped_sources(against: str, edited: Path) -> tuple[str, dict[str, str]]:
    """(label, file name -> text) of the shipped mappings; a directory wins over a ref."""
    path = Path(against)
    if path.is_dir():
        return str(path), read_sources(path)
    return git_sources(against, edited)


def git_sources(ref: str, directory: Path) -> tuple[str, dict[str, str]]:
    """The mapping files that ``directory`` held at ``ref``, read from git."""
    if not directory.is_dir():
        raise FatalError(f"the mappings directory {directory} does not exist")
    where = _git(directory, "rev-parse", "--show-toplevel", what=f"--against {ref}").strip()
    prefix = _git(directory, "rev-parse", "--show-prefix", what=f"--against {ref}").strip()
    _git(
        Path(where),
        "rev-parse",
        "--verify",
        "--quiet",
        f"{ref}^{{commit}}",
        what=f"--against {ref}: no such directory, and not a commit, branch or tag in {where}",
    )
    tree = f"{ref}:{prefix}"
    listing = _git(
        Path(where),
        "ls-tree",
        "-z",
        "--name-only",
        tree,
        what=f"--against {ref}: {prefix or './'} did not exist at {ref}",
    )
    names = sorted(n for n in listing.split("\0") if n and n.endswith(MAPPING_SUFFIXES))
    sources = {
        name: _git(Path(where), "show", f"{tree}{name}", what=f"reading {tree}{name}")
        for name in names
    }
    return tree.rstrip("/"), sources


def _git(cwd: Path, *args: str, what: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise FatalError(f"{what}: git is not installed") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise FatalError(f"{what}" + (f" (git: {detail[-1]})" if detail else ""))
    return done.stdout.decode("utf-8")


# ---- the events ----


async def _samples(
    options: DiffOptions, settings: Settings, shipped: Draft, edited: Draft
) -> tuple[list[Sample], str]:
    if options.events_file is not None:
        found = file_samples(options.events_file, options.now)
        return found, f"{options.events_file} ({len(found)} events)"
    if options.topic is not None:
        tail = await read_last(settings.kafka, options.topic, options.last)
        found = [Sample(r.where, raw=r.value or b"", now=options.now) for r in tail.records]
        note = (
            f"; not read to the end in time: {', '.join(tail.unfinished)}"
            if tail.unfinished
            else ""
        )
        return found, f"the last {len(found)} records of {options.topic}{note}"
    found = example_samples(edited, shipped, options.now)
    return found, f"the rules' examples ({len(found)})"


def example_samples(edited: Draft, shipped: Draft, now: dt.datetime | None) -> list[Sample]:
    """Every example of both versions, each event once (edited first)."""
    seen: set[str] = set()
    found = []
    for draft in (edited, shipped):
        for rule in draft.rules:
            for example in rule.examples:
                moment = now or example.now
                key = json.dumps([example.event, str(moment)], sort_keys=True, default=str)
                if key in seen:
                    continue
                seen.add(key)
                label = f'{rule.id}, example "{example.name}" ({rule.file}:{example.line})'
                document = example_event(rule, example)
                found.append(Sample(label, document=document, now=moment))
    return found


def file_samples(path: Path, now: dt.datetime | None) -> list[Sample]:
    """Events from a file: a JSON list, one JSON object, or JSON lines."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FatalError(f"cannot read --events {path}: {exc}") from None
    moment = now or dt.datetime.now(dt.UTC)
    samples = []
    for label, item in read_events(data, str(path)):
        if isinstance(item, str):
            samples.append(Sample(label, problem=item, now=now))
        else:
            document, _ = fill_preview_fields(item, moment)
            samples.append(Sample(label, document=document, now=now))
    return samples


# ---- rendering and comparing ----


def _outcome(renderer: Renderer, sample: Sample, settings: Settings) -> Outcome:
    if sample.problem is not None:
        return Outcome(invalid=sample.problem)
    if sample.raw is not None:
        return renderer.raw(sample.raw, settings.event.max_bytes, sample.now)
    assert sample.document is not None
    return renderer.event(sample.document, sample.now)


def _side(outcome: Outcome, renderer: Renderer) -> dict[str, Any]:
    """What one version does with the event, as plain values to compare and print."""
    failure = outcome.failed
    rule = None if outcome.rule is None else outcome.rule.id
    if failure is not None:
        return {"rule": rule, "failure": failure}
    if outcome.no_push is not None:
        return {"no_push": outcome.no_push}
    side: dict[str, Any] = {"rule": rule}
    for pushed in outcome.pushes:
        sent = pushed.sent(renderer.settings)
        if pushed.push is None or sent is None:  # failures were returned above
            continue
        texts = {"title": sent[0], "summary": sent[1], "deeplink": pushed.push.message.deeplink}
        if pushed.variant == "personal":
            push = pushed.push
            side |= texts | {
                "class": push.push_class.value,
                "ttl_s": push.ttl_s,
                "collapse_key": push.collapse_key,
            }
        else:
            side[pushed.variant] = texts
    return side


def _classify(report: DiffReport, change: Change) -> None:
    old, new = change.before, change.after
    if "failure" in old and "failure" in new:
        report.still_failing.append(change)
    elif "failure" in new:
        report.new_failures.append(change)
    elif "failure" in old:
        report.fixed.append(change)
    elif "title" in old and "title" in new:
        if change.fields():
            report.changed.append(change)
        else:
            report.unchanged += 1
    elif "title" in old:
        report.no_longer_sent.append(change)
    elif "title" in new:
        report.now_sent.append(change)
    else:
        report.unchanged += 1


# ---- cost ----


def _cost_changes(shipped: Draft, edited: Draft, imshop: ImshopSettings) -> list[dict[str, Any]]:
    def costs(draft: Draft) -> dict[str, dict[str, Any]]:
        return {
            rule.id: {v.name: cost_of(v.rule, imshop) for v in variants(rule, draft.settings)}
            for rule in draft.rules
        }

    old, new = costs(shipped), costs(edited)
    changes = []
    for rule_id in [*new, *(r for r in old if r not in new)]:
        if old.get(rule_id) != new.get(rule_id):
            changes.append({"rule": rule_id, "before": old.get(rule_id), "after": new.get(rule_id)})
    return changes


def _requests(
    sent: tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]], imshop: ImshopSettings
) -> dict[str, Any]:
    """Provider requests for the pushes: identical messages share one, up to M recipients."""
    per = imshop.max_ids_per_request

    def count(counter: Counter[tuple[Any, ...]]) -> int:
        return sum(math.ceil(n / per) for n in counter.values())

    return {
        "before": count(sent[0]),
        "after": count(sent[1]),
        "per_window": imshop.rate_limit_requests,
        "window_s": imshop.rate_limit_window_s,
    }


# ---- the report ----


def print_diff(report: DiffReport, out: TextIO, *, as_json: bool = False) -> None:
    if as_json:
        json.dump(report.as_json(), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    for line in report_lines(report):
        print(line, file=out)


def report_lines(report: DiffReport) -> list[str]:
    lines = [
        f"Shipped: {_set_line(report.shipped)}",
        f"Edited:  {_set_line(report.edited)}",
        f"Events:  {report.source}",
        "",
    ]
    sections = (
        ("Pushes that change", report.changed, _changed_lines),
        (
            "New failures: the service would dead-letter these events",
            report.new_failures,
            _failure_lines,
        ),
        ("No longer sent", report.no_longer_sent, _gone_lines),
        ("Now sent", report.now_sent, _new_lines),
        ("Fixed: these failed before", report.fixed, _new_lines),
        ("Still failing", report.still_failing, _failure_lines),
    )
    for title, changes, describe in sections:
        if not changes:
            continue
        lines.append(f"{title} ({len(changes)})")
        for number, change in enumerate(changes, start=1):
            lines.append(f"  {number}. {change.label}")
            lines += [f"       {text}" for text in describe(change)]
        lines.append("")
    if not any(changes for _, changes, _ in sections):
        lines += ["No push changes.", ""]
    lines.append(
        f"Unchanged: {report.unchanged} of {report.events} events give the same push "
        "(or none) as before."
    )
    lines += ["", *_cost_text(report)]
    if any(SPACE_MARK in line for line in lines):
        lines += [
            "",
            f"{SPACE_MARK} marks a non-breaking space, where an edit adds or removes one.",
        ]
    return lines


def _set_line(about: dict[str, Any]) -> str:
    problems = about["problems"]
    state = (
        "passes the check"
        if not problems
        else f"does not pass the check ({len(problems)} problem(s); run `mappings check`)"
    )
    return f"{about['mappings']}: {about['rules']} rules, {state}"


def _changed_lines(change: Change) -> list[str]:
    lines = []
    for name, old, new in change.fields():
        if name == "shared":
            lines += _shared_lines(old, new)
            continue
        shown_old, shown_new = _shown_pair(old, new)
        lines += [f"{name:<12} {shown_old}", f"{'':<9}→   {shown_new}"]
    return lines


def _shared_lines(old: Any, new: Any) -> list[str]:
    if not old or not new:
        return [f"shared text  {_quoted_texts(old)}", f"{'':<9}→   {_quoted_texts(new)}"]
    lines = []
    for key in ("title", "summary", "deeplink"):
        if old.get(key) != new.get(key):
            shown_old, shown_new = _shown_pair(old.get(key), new.get(key))
            lines += [f"shared {key:<5} {shown_old}", f"{'':<9}→   {shown_new}"]
    return lines


def _quoted_texts(texts: Any) -> str:
    if not texts:
        return "(none)"
    return f"{_quoted(texts['title'])} / {_quoted(texts['summary'])}"


def _shown_pair(old: Any, new: Any) -> tuple[str, str]:
    """Both values in quotes; non-breaking spaces made visible when the edit adds or drops one."""
    if isinstance(old, str) and isinstance(new, str) and _hard_spaces(old) != _hard_spaces(new):
        return _quoted(marked(old)), _quoted(marked(new))
    return _quoted(old), _quoted(new)


def _failure_lines(change: Change) -> list[str]:
    lines = [f"now:    {change.after['failure']}"]
    if "failure" in change.before and change.before["failure"] != change.after["failure"]:
        lines.append(f"before: {change.before['failure']}")
    elif "title" in change.before:
        lines.append(f"before: {_push_text(change.before)}")
    return lines


def _gone_lines(change: Change) -> list[str]:
    return [f"before: {_push_text(change.before)}", f"now:    no push: {change.after['no_push']}"]


def _new_lines(change: Change) -> list[str]:
    before = change.before.get("failure") or f"no push: {change.before.get('no_push')}"
    return [f"before: {before}", f"now:    {_push_text(change.after)}"]


def _push_text(side: dict[str, Any]) -> str:
    return f"{_quoted(side['title'])} / {_quoted(side['summary'])} (rule {side['rule']})"


def _cost_text(report: DiffReport) -> list[str]:
    lines = ["Cost"]
    for item in report.cost:
        lines += _rule_cost_lines(item)
    if not report.cost:
        lines.append("  every rule costs what it cost before")
    requests = report.requests
    if requests:
        n, w = requests["per_window"], requests["window_s"]
        before, after = (requests[k] / n * w / 60 for k in ("before", "after"))
        lines.append(
            f"  these events' pushes take {requests['before']} provider request(s) before and "
            f"{requests['after']} after (IMSHOP takes {n} per {w:g} s: "
            f"{before:.1f} → {after:.1f} min of its budget)"
        )
    return lines


def _rule_cost_lines(item: dict[str, Any]) -> list[str]:
    old, new = item["before"], item["after"]
    if old is None:
        return [f"  {item['rule']}: new rule, {_costs(new)}"]
    if new is None:
        return [f"  {item['rule']}: removed (it was {_costs(old)})"]
    return [
        f"  {item['rule']}: {_tiers(old)} → {_tiers(new)}",
        f"      before: {_costs(old)}",
        f"      after:  {_costs(new)}",
    ]


def _tiers(costs: dict[str, dict[str, str]]) -> str:
    return " + ".join(
        f"{c['tier']}" + ("" if name == "personal" else f" ({name})") for name, c in costs.items()
    )


def _costs(costs: dict[str, dict[str, str]]) -> str:
    return "; ".join(
        (c["text"] if name == "personal" else f"{name}: {c['text']}") for name, c in costs.items()
    )


def _hard_spaces(text: str) -> int:
    return text.count(NBSP) + text.count(NARROW_NBSP)


def _quoted(value: Any) -> str:
    if value is None:
        return "(none)"
    return f"«{value}»" if isinstance(value, str) else str(value)
