"""Loading a mappings directory: read every file once, parse, check, build the set.

The files are read in one pass and hashed together, so a set always comes from
one consistent snapshot; if anything is wrong, nothing is built and
``MappingLoadError`` lists every problem as ``file:line: text``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import yaml

from consumer.errors import MappingLoadError
from consumer.events import EVENT_MODELS
from consumer.mapping.check import check_overlaps, static_problems
from consumer.mapping.contract import builtin_paths, common_paths, with_parents
from consumer.mapping.examples import example_problems
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
    problems: list[tuple[str, int, str]] = []
    if not sources:
        problems.append((str(directory), 1, "there are no mapping files (*.yaml) here"))
    docs = _parse_documents(directory, sources, problems)
    declared = []
    for file, doc in docs:
        collector = Problems(file)
        declared += parse_declared_types(doc, collector)
        problems += collector.found
    known = _known_paths(declared, problems)
    env = build_environment()
    rules: list[Rule] = []
    for file, doc in docs:
        collector = Problems(file)
        rules += RuleParser(env, collector, Path(file).name).parse_rules(doc)
        problems += collector.found
    for rule in rules:
        problems += static_problems(rule, known, settings.allowed_deeplink_schemes)
    problems += check_overlaps(rules)
    extra_types = frozenset(d.name for d in declared if d.name not in EVENT_MODELS)
    mappings = MappingSet(
        rules, settings=settings, extra_types=extra_types, digest=digest_of(sources)
    )
    if not problems:
        problems += example_problems(mappings, settings)
    if problems:
        raise MappingLoadError([f"{f}:{line}: {text}" for f, line, text in sorted(problems)])
    return mappings


def _parse_documents(
    directory: Path, sources: Mapping[str, str], problems: list[tuple[str, int, str]]
) -> list[tuple[str, LineDict]]:
    docs = []
    for name, text in sources.items():
        file = str(directory / name)
        try:
            doc, odd_keys = load_yaml(text)
        except yaml.YAMLError as exc:
            problems.append((file, *syntax_problem(exc)))
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


def _known_paths(
    declared: list[DeclaredType], problems: list[tuple[str, int, str]]
) -> dict[str, frozenset[str]]:
    known = builtin_paths()
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
        base = known.get(item.name, common_paths())
        known[item.name] = base | with_parents(item.fields)
    return known
