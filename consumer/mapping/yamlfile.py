"""YAML reading that remembers the line of every key and list item.

Values come back as ``LineDict`` / ``LineList`` (plain dict and list with line
numbers attached), so every problem can be reported as ``file:line``. Duplicate
keys, which YAML would silently resolve to the last one, are problems here.
Timestamps stay strings: an example event's ``occurred_at`` is the text typed.
"""

from __future__ import annotations

from typing import Any

import yaml


class LineDict(dict[Any, Any]):
    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    duplicates: list[tuple[int, str]]


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool):
            loader.duplicates.append((line, "a key must be a plain word"))
            continue
        if key in data:
            loader.duplicates.append(
                (line, f"`{key}` is given twice (also on line {data.key_lines[key]})")
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line
    return data


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    data = LineList(loader.construct_object(child, deep=True) for child in node.value)
    data.line = node.start_mark.line + 1
    data.item_lines = [child.start_mark.line + 1 for child in node.value]
    return data


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(text: str) -> tuple[Any, list[tuple[int, str]]]:
    """The document, plus (line, problem) for duplicate or odd keys.

    Raises ``yaml.YAMLError`` (with ``problem_mark``) on a syntax error.
    """
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    return data, loader.duplicates


# What PyYAML's terse messages usually mean for someone editing push texts.
_HINTS = {
    "mapping values are not allowed here": (
        "a text contains a colon followed by a space; put the whole text in quotes"
    ),
    "found character '\\t' that cannot start any token": "indent with spaces, not tabs",
    "could not find expected ':'": "a line is missing `key:` or is indented differently",
    "found unexpected end of stream": "a quote is opened but never closed",
}


def syntax_problem(exc: yaml.YAMLError) -> tuple[int, str]:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    what = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
    hint = _HINTS.get(what)
    if hint:
        return line, f"YAML syntax error: {hint}"
    context = getattr(exc, "context", None)
    text = f"{context}, {what}" if context else what
    return line, f"YAML syntax error: {text}"
