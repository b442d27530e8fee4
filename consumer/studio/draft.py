"""Mappings as the product team has them right now: a draft, with its problems.

The service loads a directory all or nothing (``load_mappings``). The preview
and the diff need more: every problem the check finds, *and* cards for every
rule that can be read while other rules are still wrong. So a draft is built in
two passes over one snapshot of the files:

- the problems come from the loader itself (``load_sources``), so the page and
  the diff show exactly what ``mappings check`` says, new checks included;
- the rules come from a lenient pass (YAML, then ``RuleParser``) that keeps
  every rule that parses, whatever the checks or the examples say.

A file whose YAML cannot be read keeps the rules it had in the previous draft,
marked stale, so a half-typed edit does not blank its cards.

This is the one place that knows the mapping package's internals; the rest of
the studio goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from consumer.errors import MappingLoadError
from consumer.events import EVENT_MODELS
from consumer.mapping.loader import digest_of, load_sources, read_sources
from consumer.mapping.parse import DeclaredType, Problems, RuleParser, parse_declared_types
from consumer.mapping.render import build_environment
from consumer.mapping.rules import MappingSet, Rule
from consumer.mapping.yamlfile import LineDict, LineList, load_yaml
from consumer.settings import MappingSettings

_PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<text>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Problem:
    """One line of ``mappings check``: where, and what is wrong."""

    file: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @staticmethod
    def parse(line: str) -> Problem:
        match = _PROBLEM.match(line)
        if match is None:
            return Problem("", 0, line)
        return Problem(match["file"], int(match["line"]), match["text"])

    def __str__(self) -> str:
        return f"{self.where}: {self.text}" if self.file else self.text


@dataclass(slots=True)
class Draft:
    """Every rule that parses, in a set that renders them, and the check's problems."""

    directory: Path
    mappings: MappingSet
    problems: list[Problem]
    stale_files: frozenset[str] = frozenset()  # file names shown from the previous draft
    settings: MappingSettings = field(default_factory=MappingSettings)
    # Where each rule of a file starts, parsed or not: a problem belongs to the
    # rule whose lines hold it, even when the next rule could not be read.
    rule_starts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.mappings.rules

    def problems_of(self, rule: Rule) -> list[Problem]:
        """The problems inside this rule's lines (from its first line to the next rule's)."""
        starts = self.rule_starts.get(rule.file) or tuple(
            r.line for r in self.rules if r.file == rule.file
        )
        end = min((line for line in starts if line > rule.line), default=None)
        return [
            p
            for p in self.problems
            if p.file == rule.file and rule.line <= p.line and (end is None or p.line < end)
        ]

    def loose_problems(self) -> list[Problem]:
        """Problems outside every rule (a YAML error, a file-level section)."""
        inside = {id(p) for rule in self.rules for p in self.problems_of(rule)}
        return [p for p in self.problems if id(p) not in inside]


def load_draft(
    directory: Path,
    settings: MappingSettings,
    *,
    sources: Mapping[str, str] | None = None,
    previous: Draft | None = None,
) -> Draft:
    """The draft in ``directory`` (or in ``sources``, file name -> text, e.g. from git)."""
    try:
        texts = dict(read_sources(directory)) if sources is None else dict(sources)
    except MappingLoadError as exc:
        empty = MappingSet([], settings=settings, extra_types=frozenset(), digest="")
        return Draft(directory, empty, [Problem.parse(p) for p in exc.problems], settings=settings)
    problems = _problems(directory, texts, settings)
    rules, extra_types, unreadable, starts = _lenient_rules(directory, texts)
    stale: set[str] = set()
    if previous is not None:
        for rule in previous.rules:
            if rule.file_name in unreadable:
                rules.append(rule)
                stale.add(rule.file_name)
    mappings = MappingSet(
        _first_of_each_id(rules),
        settings=settings,
        extra_types=extra_types | (previous.mappings.extra_types if stale and previous else set()),
        digest=digest_of(texts),
    )
    return Draft(directory, mappings, problems, frozenset(stale), settings, starts)


def _problems(
    directory: Path, texts: Mapping[str, str], settings: MappingSettings
) -> list[Problem]:
    try:
        load_sources(directory, texts, settings)
    except MappingLoadError as exc:
        return [Problem.parse(line) for line in exc.problems]
    return []


def _lenient_rules(
    directory: Path, texts: Mapping[str, str]
) -> tuple[list[Rule], frozenset[str], set[str], dict[str, tuple[int, ...]]]:
    """Every rule that parses (checks aside), the extra types, unreadable files, rule starts."""
    env = build_environment()
    rules: list[Rule] = []
    declared: list[DeclaredType] = []
    unreadable: set[str] = set()
    starts: dict[str, tuple[int, ...]] = {}
    for name in sorted(texts):
        try:
            doc, _ = load_yaml(texts[name])
        except yaml.YAMLError:
            unreadable.add(name)
            continue
        if not isinstance(doc, LineDict):
            continue
        file = str(directory / name)
        collector = Problems(file)  # the problems come from the loader
        declared += parse_declared_types(doc, collector)
        rules += RuleParser(env, collector, name).parse_rules(doc)
        section = doc.get("rules")
        if isinstance(section, LineList):
            starts[file] = tuple(section.line_of(i) for i in range(len(section)))
    extra = frozenset(d.name for d in declared if d.name not in EVENT_MODELS)
    return rules, extra, unreadable, starts


def _first_of_each_id(rules: list[Rule]) -> list[Rule]:
    # A rule id used twice is a problem the check reports; the set renders by id,
    # so only the first may stay.
    seen: set[str] = set()
    kept = []
    for rule in rules:
        if rule.rule_id not in seen:
            seen.add(rule.rule_id)
            kept.append(rule)
    return kept
