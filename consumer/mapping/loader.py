"""Loading a mappings directory: read every file once, parse, check, build the set.

The files are read in one pass and hashed together, so a set always comes from
one consistent snapshot. ``load_mappings`` (the service) builds nothing if
anything is wrong: ``MappingLoadError`` lists every problem as ``file:line:
text``. ``load_draft`` (previews) builds whatever can be read and lists the
problems beside it, per rule too, so a draft can be looked at while it is being
fixed.
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
    draft = draft_of(directory, sources, settings)
    if draft.problems:
        raise MappingLoadError(draft.lines())
    return draft.mappings


@dataclass
class Draft:
    """Every rule that could be read, and every problem found (none: ready to ship)."""

    mappings: MappingSet
    problems: list[Problem]
    contract: Contract
    by_rule: dict[str, list[Problem]] = field(default_factory=dict)  # rule_id -> its problems

    def lines(self) -> list[str]:
        return [f"{file}:{line}: {text}" for file, line, text in self.problems]

    def problems_of(self, rule: Rule) -> list[Problem]:
        return self.by_rule.get(rule.rule_id, [])


def load_draft(directory: Path, settings: MappingSettings) -> Draft:
    """Like ``load_mappings``, but keeps what can be read; raises only if nothing can be."""
    return draft_of(directory, read_sources(directory), settings)


def draft_of(directory: Path, sources: Mapping[str, str], settings: MappingSettings) -> Draft:
    problems: list[Problem] = []
    if not sources:
        problems.append((str(directory), 1, "there are no mapping files (*.yaml) here"))
    docs = _parse_documents(directory, sources, problems)
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
    by_rule = {
        rule.rule_id: static_problems(rule, contract, settings.allowed_deeplink_schemes)
        for rule in rules
    }
    by_id = {rule.rule_id: rule for rule in rules}
    for problem in check_overlaps(rules):
        for rule in rules:  # the overlap is reported on the later rule
            if (rule.file, rule.line) == problem[:2]:
                by_rule[rule.rule_id].append(problem)
    extra_types = frozenset(d.name for d in declared if d.name not in EVENT_MODELS)
    mappings = MappingSet(
        rules, settings=settings, extra_types=extra_types, digest=digest_of(sources)
    )
    for rule_id, found in by_rule.items():
        if not found:  # a rule's examples are rendered once the rule itself is sound
            found += rule_example_problems(mappings, by_id[rule_id], settings)
        problems += found
    return Draft(mappings, sorted(problems), contract, by_rule)


def _parse_documents(
    directory: Path, sources: Mapping[str, str], problems: list[tuple[str, int, str]]
) -> list[tuple[str, LineDict]]:
    docs = []
    for name, text in sources.items():
        file = str(directory / name)
        try:
            doc, odd_keys = load_yaml(text)
        except yaml.YAMLError as exc:
            problems.append((file, *syntax_problem(exc, text)))
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
    return docs


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
