"""Mappings as the product team has them right now: a draft, with its problems.

The service loads a directory all or nothing (``load_mappings``). The tools need
more: every problem the check finds, *and* every rule that can be read while
other rules are still wrong, to render it. Both come from one pass over one
snapshot of the files, the check's own (``loader.check_sources``), so the page,
the diff and ``mappings render`` show exactly what ``mappings check`` says.

Each problem sits in the rule it is about (its texts, an overlap, an example);
the rest (a YAML error, a rule that cannot be read, ``event_types``) are loose.
A file whose YAML cannot be read keeps the rules it had in the previous draft,
marked stale, so a half-typed edit does not blank its cards.

This is the one place that knows how the mapping package loads; the rest of
the studio goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from consumer.errors import MappingLoadError
from consumer.mapping.contract import Contract, builtin_contract
from consumer.mapping.loader import check_sources, read_sources
from consumer.mapping.rules import MappingSet, Rule
from consumer.settings import MappingSettings

_PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<text>.*)$", re.DOTALL)


class Problem(NamedTuple):
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
    """Every rule that can be read, in a set that renders them, and the check's problems."""

    directory: Path
    mappings: MappingSet
    problems: list[Problem]
    contract: Contract = field(default_factory=builtin_contract)
    stale_files: frozenset[str] = frozenset()  # file names shown from the previous draft
    # A rule's own problems, by where it starts (``loader.Checked.by_rule``).
    by_rule: Mapping[tuple[str, int], list[Problem]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.mappings.rules

    @property
    def settings(self) -> MappingSettings:
        return self.mappings.settings

    def problems_of(self, rule: Rule) -> list[Problem]:
        """The problems about this rule: its texts, an overlap, its examples."""
        return self.by_rule.get((rule.file, rule.line), [])

    def loose_problems(self) -> list[Problem]:
        """Problems outside every rule (a YAML error, a rule that cannot be read)."""
        inside = {p for rule in self.rules for p in self.problems_of(rule)}
        return [p for p in self.problems if p not in inside]


def load_draft(
    directory: Path,
    settings: MappingSettings,
    *,
    sources: Mapping[str, str] | None = None,
    previous: Draft | None = None,
) -> Draft:
    """The draft in ``directory`` (or in ``sources``, file name -> text, e.g. from git).

    A directory that cannot be read gives an empty draft whose problem says why.
    """
    try:
        texts = read_sources(directory) if sources is None else dict(sources)
    except MappingLoadError as exc:
        empty = MappingSet([], settings=settings, extra_types=frozenset(), digest="")
        return Draft(directory, empty, [Problem.parse(p) for p in exc.problems])
    checked = check_sources(directory, texts, settings)
    mappings = checked.mappings
    kept = [r for r in previous.rules if r.file_name in checked.unreadable] if previous else []
    if previous is not None and kept:
        mappings = MappingSet(
            [*mappings.rules, *kept],
            settings=settings,
            extra_types=mappings.extra_types | previous.mappings.extra_types,
            digest=mappings.digest,
        )
    return Draft(
        directory,
        mappings,
        [Problem(*p) for p in checked.problems],
        checked.contract,
        frozenset(r.file_name for r in kept),
        {at: [Problem(*p) for p in found] for at, found in checked.by_rule.items()},
    )
