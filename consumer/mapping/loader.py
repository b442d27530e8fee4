"""Loading a mappings directory: read every file once, parse, check, build the set.

The files are read in one pass and hashed together, so a set always comes from
one consistent snapshot. ``load_mappings`` (the service) builds nothing if
anything is wrong: ``MappingLoadError`` lists every problem as ``file:line:
text``. Under it, ``check_sources`` is the one pass that reads, parses and
checks: every rule that can be read, every problem found, each rule's own
problems beside it; the studio's drafts (``consumer.studio.draft``) are built on
it, so they show exactly what the check says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from consumer.errors import MappingLoadError
from consumer.events import EVENT_MODELS
from consumer.mapping.check import Problem, check_overlaps, static_problems
from consumer.mapping.contract import (
    Contract,
    EventFields,
    builtin_contract,
    common_fields,
    declared_fields,
)
from consumer.mapping.examples import rule_example_problems
from consumer.mapping.parse import DeclaredType, Problems, RuleParser, parse_declared_types
from consumer.mapping.render import build_environment
from consumer.mapping.rules import MappingSet, Rule
from consumer.mapping.yamlfile import LineDict, load_yaml, syntax_problem
from consumer.settings import MappingSettings

MAPPING_SUFFIXES = (".yaml", ".yml")
_TOP_KEYS = frozenset({"rules", "event_types"})


def mapping_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in MAPPING_SUFFIXES and p.is_file())


def read_sources(directory: Path) -> dict[str, str]:
    """File name -> text for every mapping file (one snapshot)."""
    if not directory.is_dir():
        raise MappingLoadError([f"{directory}:1: the mappings directory does not exist"])
    sources = {}
    for path in mapping_files(directory):
        try:
            sources[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MappingLoadError([f"{path}:1: cannot be read: {exc}"]) from None
    return sources


def digest_of(sources: Mapping[str, str]) -> str:
    hasher = hashlib.sha256()
    for name in sorted(sources):
        hasher.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return hasher.hexdigest()


def load_mappings(directory: Path, settings: MappingSettings) -> MappingSet:
    """Read, parse and check a mappings directory; ``MappingLoadError`` lists all problems."""
    return load_sources(directory, read_sources(directory), settings)


def load_sources(
    directory: Path, sources: Mapping[str, str], settings: MappingSettings
) -> MappingSet:
    checked = check_sources(directory, sources, settings)
    if checked.problems:
        raise MappingLoadError(checked.lines())
    return checked.mappings


@dataclass
class Checked:
    """Every rule that could be read, and every problem found (none: ready to ship)."""

    mappings: MappingSet
    problems: list[Problem]  # sorted by file and line
    contract: Contract
    # A rule's own problems (its texts, overlaps, examples), by where the rule starts;
    # a rule that cannot be read is not in ``mappings`` and its problems are nobody's.
    by_rule: dict[tuple[str, int], list[Problem]] = field(default_factory=dict)
    unreadable: frozenset[str] = frozenset()  # names of the files whose YAML cannot be read

    def lines(self) -> list[str]:
        return [f"{file}:{line}: {text}" for file, line, text in self.problems]

    def problems_of(self, rule: Rule) -> list[Problem]:
        return self.by_rule.get((rule.file, rule.line), [])


def check_sources(
    directory: Path, sources: Mapping[str, str], settings: MappingSettings
) -> Checked:
    """Parse and check one snapshot of the files (file name -> text); nothing is raised."""
    problems: list[Problem] = []
    if not sources:
        problems.append((str(directory), 1, "there are no mapping files (*.yaml) here"))
    docs, unreadable = _parse_documents(directory, sources, problems)
    declared = []
    for file, doc in docs:
        collector = Problems(file)
        declared += parse_declared_types(doc, collector)
        problems += collector.found
    contract = _contract(declared, problems)
    env = build_environment()
    rules: list[Rule] = []
    for file, doc in docs:
        collector = Problems(file)
        rules += RuleParser(env, collector, Path(file).name).parse_rules(doc)
        problems += collector.found
    # Keyed by place, not id: a rule id used twice is a problem, and each of the
    # two rules still has its own.
    by_rule = {
        (rule.file, rule.line): static_problems(rule, contract, settings.allowed_deeplink_schemes)
        for rule in rules
    }
    for problem in check_overlaps(rules):
        by_rule[problem[:2]].append(problem)  # reported on the later rule's first line
    # A set renders by rule id: of a rule id used twice (a problem already), the
    # first rule stays in the set.
    first: dict[str, Rule] = {}
    for rule in rules:
        first.setdefault(rule.rule_id, rule)
    extra_types = frozenset(d.name for d in declared if d.name not in EVENT_MODELS)
    mappings = MappingSet(
        list(first.values()), settings=settings, extra_types=extra_types, digest=digest_of(sources)
    )
    for rule in rules:
        found = by_rule[(rule.file, rule.line)]
        if not found and first[rule.rule_id] is rule:  # examples, once the rule is sound
            found += rule_example_problems(mappings, rule, settings)
        found.sort()
        problems += found
    return Checked(mappings, sorted(problems), contract, by_rule, unreadable)


def _parse_documents(
    directory: Path, sources: Mapping[str, str], problems: list[tuple[str, int, str]]
) -> tuple[list[tuple[str, LineDict]], frozenset[str]]:
    """The documents that hold rules, and the names of the files that are not YAML."""
    docs = []
    unreadable = set()
    for name, text in sources.items():
        file = str(directory / name)
        try:
            doc, odd_keys = load_yaml(text)
        except yaml.YAMLError as exc:
            problems.append((file, *syntax_problem(exc, text)))
            unreadable.add(name)
            continue
        problems += [(file, line, text) for line, text in odd_keys]
        if doc is None:
            continue  # an empty file is allowed: a place for future rules
        if not isinstance(doc, LineDict):
            problems.append((file, 1, "a mapping file must hold `rules:` (and `event_types:`)"))
            continue
        for key in doc:
            if key not in _TOP_KEYS:
                problems.append(
                    (file, doc.line_of(key), f"unknown section `{key}` (use rules, event_types)")
                )
        docs.append((file, doc))
    return docs, frozenset(unreadable)


def _contract(declared: list[DeclaredType], problems: list[Problem]) -> dict[str, EventFields]:
    """The built-in contract plus what the files declare: new types, extra fields, values."""
    contract = builtin_contract()
    seen: dict[str, DeclaredType] = {}
    for item in declared:
        if item.name in seen:
            first = seen[item.name]
            problems.append(
                (
                    item.file,
                    item.line,
                    f"event type {item.name} is declared twice (also at {first.file}:{first.line})",
                )
            )
            continue
        seen[item.name] = item
        builtin = contract.get(item.name)
        if builtin is None:  # a new type: its fields are what its events carry
            required = [f for f in item.fields if f not in item.optional]
            fields = {
                **declared_fields(item.optional, always=False),
                **declared_fields(required, always=True),
                **common_fields(),
            }
        else:  # extra fields of a known type: the standard contract does not promise them
            fields = {**declared_fields(item.fields, always=False), **builtin.fields}
        contract[item.name] = EventFields(
            item.name,
            fields,
            values={path: values for path, values, _ in item.values},
            values_at={path: f"{Path(item.file).name}:{line}" for path, _, line in item.values},
        )
    return contract
