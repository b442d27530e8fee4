"""How a template uses each event field: shown, only tested, guarded by an ``if``.

The checks need more than "which paths appear": a field that may be missing is
fine inside ``{% if field %}`` or piped into ``default``, an object is fine
when a filter turns it into text, and a field that is only tested in a
condition does not make the text personal (it only picks one of a few
variants). This module walks Liquid's parse tree once and says, for each use,
in what role the field appears, which fields are known to be present there,
and which filters are applied to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from liquid.ast import BlockNode, Node
from liquid.builtin.expressions.arguments import KeywordArgument
from liquid.builtin.expressions.filtered import Filter, FilteredExpression
from liquid.builtin.expressions.logical import (
    BooleanExpression,
    ContainsExpression,
    EqExpression,
    GeExpression,
    GtExpression,
    LeExpression,
    LogicalAndExpression,
    LogicalNotExpression,
    LogicalOrExpression,
    LtExpression,
    NeExpression,
)
from liquid.builtin.expressions.path import Path
from liquid.builtin.expressions.primitive import Nil, StringLiteral
from liquid.builtin.output import OutputNode
from liquid.builtin.tags.case_tag import CaseNode
from liquid.builtin.tags.if_tag import IfNode
from liquid.builtin.tags.unless_tag import UnlessNode
from liquid.context import RenderContext
from liquid.template import BoundTemplate

from consumer.mapping.contract import is_grouped, is_shared, normalize

Role = Literal["shown", "argument", "tested"]
_COMPARISONS = (EqExpression, LtExpression, GtExpression, LeExpression, GeExpression)


@dataclass(frozen=True, slots=True)
class FilterCall:
    name: str
    texts: tuple[str | None, ...]  # each positional argument: its text if a quoted literal
    paths: tuple[str | None, ...]  # each positional argument: its path if a field
    named: bool = False  # given a `name: value` argument (none of ours takes one)


@dataclass(frozen=True, slots=True)
class Use:
    """One appearance of an event field in a template."""

    path: str
    role: Role  # shown (printed or filtered), a filter's argument, or only tested
    present: frozenset[str]  # fields the enclosing conditions prove present here
    defaulted: bool = False  # piped straight into `default`, which covers its absence
    filters: tuple[FilterCall, ...] = ()  # the chain applied to it (shown only)
    printed: bool = False  # in {{ }}: what the chain gives ends up in the text


def path_of(expression: Any) -> str | None:
    if type(expression) is not Path:
        return None
    return normalize(list(expression.path))


def shown_paths(templates: Iterable[BoundTemplate]) -> list[str]:
    """Every event field the templates put into their text (a field only tested is not)."""
    found: dict[str, None] = {}
    for template in templates:
        for use in uses(template):
            if use.role != "tested":
                found[use.path] = None
    return list(found)


def personal_paths(templates: Iterable[BoundTemplate]) -> list[str]:
    """Fields shown that differ from one customer to the next (neither shared nor grouped):
    a text showing any of them needs a provider request of its own."""
    return [p for p in shown_paths(templates) if not is_shared(p) and not is_grouped(p)]


def uses(template: BoundTemplate) -> list[Use]:
    static = RenderContext(template)
    found: list[Use] = []
    for node in template.nodes:
        found += _node(node, frozenset(), static)
    return found


def _node(node: Node, present: frozenset[str], static: RenderContext) -> Iterator[Use]:
    if isinstance(node, OutputNode):
        yield from _shown(node.expression, present, printed=True)
    elif isinstance(node, IfNode | UnlessNode):
        yield from _branches(node, present, static)
    elif isinstance(node, BlockNode):
        for child in node.nodes:
            yield from _node(child, present, static)
    elif isinstance(node, CaseNode):  # compared with each `when`: a missing value matches none
        for expression in node.expressions():
            yield from _tested(expression, present)
        for child in node.children(static, include_partials=False):
            yield from _node(child, present, static)
    else:  # other tags (for, case, assign, ...): every field counts as shown
        for expression in node.expressions():
            yield from _shown(expression, present)
        for child in node.children(static, include_partials=False):
            yield from _node(child, present, static)


def _branches(
    node: IfNode | UnlessNode, present: frozenset[str], static: RenderContext
) -> Iterator[Use]:
    negate = isinstance(node, UnlessNode)
    condition = node.condition
    yield from _tested(condition, present)
    first_true, first_false = truthy(condition), falsy(condition)
    if negate:
        first_true, first_false = first_false, first_true
    yield from _node(node.consequence, present | first_true, static)
    ruled_out = set(first_false)
    for alternative in node.alternatives:
        yield from _tested(alternative.expression, present | ruled_out)
        yield from _node(
            alternative.block, present | ruled_out | truthy(alternative.expression), static
        )
        ruled_out |= falsy(alternative.expression)
    if node.default is not None:
        yield from _node(node.default, present | ruled_out, static)


def _tested(expression: Any, present: frozenset[str]) -> Iterator[Use]:
    for path in _paths_in(expression):
        yield Use(path, "tested", present)


def _paths_in(expression: Any) -> Iterator[str]:
    path = path_of(expression)
    if path is not None:
        yield path
        return
    for child in expression.children():
        yield from _paths_in(child)


def _shown(expression: Any, present: frozenset[str], *, printed: bool = False) -> Iterator[Use]:
    if type(expression) is FilteredExpression:
        calls = tuple(_call(f) for f in expression.filters or ())
        path = path_of(expression.left)
        if path is not None:
            defaulted = bool(calls) and calls[0].name == "default"
            yield Use(path, "shown", present, defaulted, calls, printed)
        else:
            yield from _shown(expression.left, present)
        for call in expression.filters or ():
            for argument in call.args:
                yield from _argument(argument.value, present)
        return
    path = path_of(expression)
    if path is not None:
        yield Use(path, "shown", present, printed=printed)
        return
    for child in expression.children():
        yield from _shown(child, present)


def _argument(expression: Any, present: frozenset[str]) -> Iterator[Use]:
    path = path_of(expression)
    if path is not None:
        yield Use(path, "argument", present)
    else:
        for child in expression.children():
            yield from _argument(child, present)


def _call(node: Filter) -> FilterCall:
    positional = [a for a in node.args if not isinstance(a, KeywordArgument)]
    texts = tuple(a.value.value if type(a.value) is StringLiteral else None for a in positional)
    paths = tuple(path_of(a.value) for a in positional)
    return FilterCall(node.name, texts, paths, len(positional) < len(node.args))


def filter_calls(template: BoundTemplate) -> Iterator[FilterCall]:
    """Every filter applied anywhere in the template (conditions, tags, output)."""
    static = RenderContext(template)

    def expressions(expr: Any) -> Iterator[FilterCall]:
        for attr in ("filters", "tail_filters"):
            for node in getattr(expr, attr, None) or ():
                yield _call(node)
        for child in expr.children():
            yield from expressions(child)

    def nodes(node: Any) -> Iterator[FilterCall]:
        for expr in node.expressions():
            yield from expressions(expr)
        for child in node.children(static, include_partials=False):
            yield from nodes(child)

    for node in template.nodes:
        yield from nodes(node)


def truthy(expression: Any) -> frozenset[str]:
    """Fields that must be present when the condition holds."""
    kind = type(expression)
    if kind is BooleanExpression:
        return truthy(expression.expression)
    path = path_of(expression)
    if path is not None:
        return frozenset({path})
    if kind is LogicalAndExpression:
        return truthy(expression.left) | truthy(expression.right)
    if kind is LogicalOrExpression:
        return truthy(expression.left) & truthy(expression.right)
    if kind is LogicalNotExpression:
        return falsy(expression.right)
    if kind in _COMPARISONS or kind is ContainsExpression:
        # A missing value compares false with anything but nil (`x == nil`).
        if kind is EqExpression and Nil in (type(expression.left), type(expression.right)):
            return frozenset()
        return _compared(expression)
    if kind is NeExpression and Nil in (type(expression.left), type(expression.right)):
        return _compared(expression)
    return frozenset()


def falsy(expression: Any) -> frozenset[str]:
    """Fields that must be present when the condition does not hold."""
    kind = type(expression)
    if kind is BooleanExpression:
        return falsy(expression.expression)
    if kind is LogicalNotExpression:
        return truthy(expression.right)
    if kind is LogicalOrExpression:
        return falsy(expression.left) | falsy(expression.right)
    if kind is LogicalAndExpression:
        return falsy(expression.left) & falsy(expression.right)
    if kind is EqExpression and Nil in (type(expression.left), type(expression.right)):
        return _compared(expression)
    return frozenset()


def _compared(expression: Any) -> frozenset[str]:
    return frozenset(p for p in (path_of(expression.left), path_of(expression.right)) if p)


def is_present(path: str, present: frozenset[str]) -> bool:
    """A field is present if it, or any field inside it, is known present."""
    prefix = f"{path}."
    return path in present or any(p.startswith(prefix) for p in present)
