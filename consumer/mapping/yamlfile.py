"""YAML reading that remembers the line of every key and list item.

Values come back as ``LineDict`` / ``LineList`` (plain dict and list with line
numbers attached), so every problem can be reported as ``file:line``. Duplicate
keys, which YAML would silently resolve to the last one, are problems here.
Timestamps stay strings: an example event's ``occurred_at`` is the text typed.
"""

from __future__ import annotations

import re
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


def syntax_problem(exc: yaml.YAMLError, text: str = "") -> tuple[int, str]:
    """(line, what is wrong and how to fix it) for a file YAML cannot read.

    PyYAML reports where its parser gave up, which is often a line or more after
    the slip (an unclosed quote is found at the end of the file) and in its own
    terms ("expected <block end>"). The common slips are recognised from the
    text around that place and reported on the line to fix.
    """
    lines = text.splitlines()
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
    context = str(getattr(exc, "context", None) or "")
    found = _SlipFinder(lines).find(line, problem, context, context_mark)
    if found is not None:
        return found[0], f"YAML syntax error: {found[1]}"
    text = f"{context}, {problem}" if context else problem
    return line, f"YAML syntax error: {text}"


_KEY = re.compile(r"^(\s*)(-\s+)?([^\s#'\"{\[][^:#]*?):(\s|$)")
_DASH = re.compile(r"^(\s*)-(\s|$)")


class _SlipFinder:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def find(
        self, line: int, problem: str, context: str, context_mark: Any
    ) -> tuple[int, str] | None:
        if "'\\t'" in problem or "\t" in problem:
            return self._tab(line)
        start = context_mark.line + 1 if context_mark is not None else 1
        for check in (self._quote_left_open, self._quote_closed_early, self._starts_with_brace):
            found = check(start, line)
            if found is not None:
                return found
        if "quoted scalar" in context and context_mark is not None:
            return start, "a quote opened here is never closed; end the text with the same quote"
        if "flow mapping" in context or "flow sequence" in context:
            bracket = "{" if "mapping" in context else "["
            closer = "}" if bracket == "{" else "]"
            return start, f"the `{bracket}` opened here is not closed with `{closer}`"
        if "<block sequence start>" in problem or "found '-'" in problem:
            return self._shifted_dash(line)
        if "<block mapping start>" in problem:
            return self._shifted_key(line)
        if problem == "mapping values are not allowed here":
            return self._shifted_key(line, deeper=True) or (
                line,
                "a text contains a colon followed by a space; put the whole text in quotes",
            )
        if "that cannot start any token" in problem:
            return line, "a text starts with a sign YAML reserves; put the whole text in quotes"
        return None

    def _value(self, number: int) -> tuple[str, str] | None:
        """(key, value) of a `key: value` line, value stripped of a trailing comment."""
        if not 1 <= number <= len(self.lines):
            return None
        match = _KEY.match(self.lines[number - 1])
        if match is None:
            return None
        return match.group(3).strip(), self.lines[number - 1][match.end() :].strip()

    def _tab(self, line: int) -> tuple[int, str]:
        number = (
            next((n for n in range(line, 0, -1) if "\t" in self.lines[n - 1]), line)
            if self.lines
            else line
        )
        return (
            number,
            "the line has a tab; indent and separate with spaces (YAML does not allow tabs)",
        )

    def _quote_left_open(self, start: int, line: int) -> tuple[int, str] | None:
        for number in range(max(1, start), min(line, len(self.lines)) + 1):
            found = self._value(number)
            if found is None or not found[1] or found[1][0] not in "'\"":
                continue
            quote, value = found[1][0], found[1]
            if _closing_quote(value) is None:
                return (
                    number,
                    f"the text of `{found[0]}` opens a quote {quote} that is not closed on "
                    f"this line; end it with {quote}",
                )
        return None

    def _quote_closed_early(self, start: int, line: int) -> tuple[int, str] | None:
        for number in range(max(1, start), min(line, len(self.lines)) + 1):
            found = self._value(number)
            if found is None or not found[1] or found[1][0] not in "'\"":
                continue
            value = found[1]
            end = _closing_quote(value)
            rest = value[end + 1 :].strip() if end is not None else ""
            if end is None or not rest or rest.startswith("#"):
                continue
            quote = value[0]
            other = '"' if quote == "'" else "'"
            return (
                number,
                f"the text of `{found[0]}` starts with {quote} and has {quote} inside, which "
                f"ends it early (before `{rest[:20]}`); inside a text in {quote}…{quote} "
                f"write the inner quotes as {other}…{other}, e.g. "
                f"`{found[0]}: {quote}… plural: {other}бонус{other}, {other}бонуса{other}, "
                f"{other}бонусов{other} …{quote}`",
            )
        return None

    def _starts_with_brace(self, start: int, line: int) -> tuple[int, str] | None:
        for number in range(max(1, start), min(line, len(self.lines)) + 1):
            found = self._value(number)
            if found is not None and found[1].startswith(("{{", "{%")):
                return (
                    number,
                    f"a text that starts with `{found[1][:2]}` must be in quotes: "
                    f'`{found[0]}: "{found[1][:30]}…"`',
                )
        return None

    def _shifted_dash(self, line: int) -> tuple[int, str] | None:
        """A list item whose `-` does not line up with the list it belongs to."""
        if not 1 <= line <= len(self.lines):
            return None
        here = _DASH.match(self.lines[line - 1])
        if here is None:
            return None
        column = len(here.group(1))
        best: tuple[int, int] | None = None  # (line, column) of the nearest list's dash
        for number in range(line - 1, 0, -1):
            other = _DASH.match(self.lines[number - 1])
            if other is None or len(other.group(1)) == column:
                continue
            if best is None or abs(len(other.group(1)) - column) < abs(best[1] - column):
                best = (number, len(other.group(1)))
        if best is None:
            return None
        return (
            line,
            f"this `-` starts in column {column + 1}, but the items of the list above start "
            f"in column {best[1] + 1} (line {best[0]}); items of one list must line up",
        )

    def _shifted_key(self, line: int, *, deeper: bool = False) -> tuple[int, str] | None:
        """A `key:` line indented unlike the keys of its block."""
        if not 2 <= line <= len(self.lines):
            return None
        here = _KEY.match(self.lines[line - 1])
        if here is None or here.group(2):
            return None
        column = len(here.group(1))
        best: tuple[int, int, str] | None = None  # (line, column, key) closest in indentation
        for number in range(line - 1, 0, -1):
            above = _KEY.match(self.lines[number - 1])
            if above is None:
                continue
            expected = len(above.group(1)) + len(above.group(2) or "")
            if deeper:  # only the line right above can have caused it
                has_value = bool(self.lines[number - 1][above.end() :].strip())
                if not has_value or column <= expected:
                    return None
                best = (number, expected, above.group(3).strip())
                break
            if expected == column:
                return None
            if best is None or abs(expected - column) < abs(best[1] - column):
                best = (number, expected, above.group(3).strip())
            if expected == 0:
                break
        if best is None:
            return None
        number, expected, key = best
        way = "more" if column > expected else "less"
        return (
            line,
            f"`{here.group(3).strip()}:` is indented {way} than `{key}:` on line {number} "
            f"(column {column + 1}, not {expected + 1}); keys of one block start in the "
            "same column",
        )


def _closing_quote(value: str) -> int | None:
    """Index of the quote that ends a quoted YAML scalar starting at value[0]."""
    quote, index = value[0], 1
    while index < len(value):
        char = value[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and value[index + 1 : index + 2] == "'":
                index += 2  # '' is a quote inside single quotes
                continue
            return index
        index += 1
    return None
