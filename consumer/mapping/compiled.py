"""Push templates turned into plain Python functions, with Liquid as the fallback.

Liquid's per-render set-up (a render context, scopes, a limited buffer) costs
more than a push template's own work. Most push templates use only text,
``{{ path | filter: args }}`` and ``{% if a and not b %}…{% elsif %}…{% else %}…{% endif %}``;
plus comparisons in conditions (``{% if order.items_count > 0 %}``); those are
compiled here from Liquid's own parse tree into closures that call the very
same filter and comparison functions and stringify values as Liquid does.

Exactness comes from refusing, not from imitating: anything else in a template
(other tags, operators, ``size``/``first``/``last``, indexes) makes it not
compile, and anything unusual while rendering (a missing value shown or
filtered, a value that is not a plain dict on a path, a failing filter, an
overlong output) raises ``Fallback`` so the caller renders with Liquid, which
then produces the real output or the real error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from liquid import Environment
from liquid.ast import BlockNode, Node
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions.filtered import Filter, FilteredExpression
from liquid.builtin.expressions.logical import (
    BooleanExpression,
    EqExpression,
    GeExpression,
    GtExpression,
    LeExpression,
    LogicalAndExpression,
    LogicalNotExpression,
    LogicalOrExpression,
    LtExpression,
    NeExpression,
    _eq,
    _le,
    _lt,
    is_truthy,
)
from liquid.builtin.expressions.path import Path
from liquid.builtin.expressions.primitive import (
    FalseLiteral,
    FloatLiteral,
    IntegerLiteral,
    Nil,
    StringLiteral,
    TrueLiteral,
)
from liquid.builtin.output import OutputNode
from liquid.builtin.tags.if_tag import IfNode
from liquid.exceptions import LiquidError
from liquid.stringify import to_liquid_string
from liquid.template import BoundTemplate

Context = Mapping[str, Any]
Part = Callable[[Context], str]
Value = Callable[[Context], Any]

_MISSING = object()
_LITERALS = (StringLiteral, IntegerLiteral, FloatLiteral, TrueLiteral, FalseLiteral)
_SPECIAL_KEYS = frozenset({"size", "first", "last"})

# Liquid's own comparison functions, so a compiled comparison is Liquid's by
# construction. A missing value is handed over as None: for ``==``/``!=`` against
# the literals and values compiled here, and for ``<``-style comparisons (where
# Liquid turns an undefined into None first), that is what Liquid does with it.
_COMPARE: dict[type, Callable[[Any, Any, Any], bool]] = {
    EqExpression: lambda _token, a, b: _eq(a, b),
    NeExpression: lambda _token, a, b: not _eq(a, b),
    LtExpression: lambda token, a, b: _lt(token, a, b),
    GtExpression: lambda token, a, b: _lt(token, b, a),
    LeExpression: lambda _token, a, b: _le(a, b),
    GeExpression: lambda _token, a, b: _le(b, a),
}


class Fallback(Exception):
    """This render needs Liquid itself (it may succeed there, or fail with the real error)."""


class _Unsupported(Exception):
    pass


class _FilterContext:
    """What a ``with_context`` filter of ours reads from Liquid's render context."""

    __slots__ = ("globals",)

    def __init__(self, context: Context) -> None:
        self.globals = context


def compile_template(
    template: BoundTemplate, context_filters: frozenset[Callable[..., Any]]
) -> Part | None:
    """A function rendering like ``template.render(context)``, or None if it cannot be one.

    ``context_filters`` are the ``with_context`` filters known to read only
    ``context.globals``; any other such filter keeps the template on Liquid.
    """
    env = template.env
    if env.autoescape or getattr(env, "disabled_tags", None):
        return None
    try:
        parts = [_node(node, env, context_filters) for node in template.nodes]
    except _Unsupported:
        return None
    limit = env.output_stream_limit

    def render(context: Context) -> str:
        text = "".join([part(context) for part in parts])
        if limit is not None and len(text) > limit:
            raise Fallback
        return text

    return render


def _node(node: Node, env: Environment, filters: frozenset[Callable[..., Any]]) -> Part:
    kind = type(node)
    if kind is ContentNode:
        text: str = node.text  # type: ignore[attr-defined]
        return lambda _context: text
    if kind is OutputNode:
        return _output(_expression(node.expression, env, filters))  # type: ignore[attr-defined]
    if kind is IfNode:
        return _if(node, env, filters)  # type: ignore[arg-type]
    raise _Unsupported(kind.__name__)


def _output(value: Value) -> Part:
    def output(context: Context) -> str:
        result = value(context)
        if result is _MISSING:
            raise Fallback  # strict: Liquid raises the "undefined" error
        return to_liquid_string(result, False)

    return output


def _block(block: BlockNode, env: Environment, filters: frozenset[Callable[..., Any]]) -> Part:
    parts = [_node(node, env, filters) for node in block.nodes]
    if env.suppress_blank_control_flow_blocks and block.blank:
        # Liquid renders a whitespace-only block into nothing (but still evaluates it).
        def blank(context: Context) -> str:
            for part in parts:
                part(context)
            return ""

        return blank
    return lambda context: "".join([part(context) for part in parts])


def _if(node: IfNode, env: Environment, filters: frozenset[Callable[..., Any]]) -> Part:
    branches = [(_condition(node.condition, env, filters), _block(node.consequence, env, filters))]
    for alternative in node.alternatives:
        condition = _condition(alternative.expression, env, filters)
        branches.append((condition, _block(alternative.block, env, filters)))
    default = _block(node.default, env, filters) if node.default is not None else None

    def render_if(context: Context) -> str:
        for condition, block in branches:
            if condition(context):
                return block(context)
        return default(context) if default is not None else ""

    return render_if


def _condition(expression: Any, env: Environment, filters: frozenset[Any]) -> Value:
    if type(expression) is not BooleanExpression:
        raise _Unsupported(type(expression).__name__)
    return _truth(expression.expression, env, filters)


def _truth(expression: Any, env: Environment, filters: frozenset[Any]) -> Value:
    """Liquid truthiness of ``and`` / ``or`` / ``not`` over values (a missing value is false)."""
    kind = type(expression)
    if kind is LogicalAndExpression or kind is LogicalOrExpression:
        left = _truth(expression.left, env, filters)
        right = _truth(expression.right, env, filters)
        if kind is LogicalAndExpression:
            return lambda context: left(context) and right(context)
        return lambda context: left(context) or right(context)
    if kind is LogicalNotExpression:
        operand = _truth(expression.right, env, filters)
        return lambda context: not operand(context)
    if kind in _COMPARE:
        return _comparison(expression, env, filters)
    value = _expression(expression, env, filters)
    return lambda context: (result := value(context)) is not _MISSING and is_truthy(result)


def _comparison(expression: Any, env: Environment, filters: frozenset[Any]) -> Value:
    compare = _COMPARE[type(expression)]
    token = expression.token
    left = _expression(expression.left, env, filters)
    right = _expression(expression.right, env, filters)

    def evaluate(context: Context) -> bool:
        a, b = left(context), right(context)
        try:
            return compare(token, None if a is _MISSING else a, None if b is _MISSING else b)
        except LiquidError:
            raise Fallback from None  # e.g. text compared with a number: Liquid's error

    return evaluate


def _expression(expression: Any, env: Environment, filters: frozenset[Any]) -> Value:
    kind = type(expression)
    if kind in _LITERALS:
        constant = expression.value
        return lambda _context: constant
    if kind is Nil:
        return lambda _context: None
    if kind is Path:
        return _path(expression)
    if kind is FilteredExpression:
        left = _expression(expression.left, env, filters)
        steps = [_filter(f, env, filters) for f in expression.filters or ()]

        def filtered(context: Context) -> Any:
            result = left(context)
            for step in steps:
                result = step(result, context)
            return result

        return filtered
    raise _Unsupported(kind.__name__)


def _path(expression: Path) -> Value:
    segments = expression.path
    if not segments or not all(type(s) is str for s in segments):
        raise _Unsupported("computed path")
    if any(s in _SPECIAL_KEYS for s in segments):
        raise _Unsupported("special key")
    root, rest = str(segments[0]), tuple(str(s) for s in segments[1:])

    def lookup(context: Context) -> Any:
        if root not in context:
            raise Fallback  # a Liquid built-in name, or undefined
        value = context[root]
        for segment in rest:
            if type(value) is not dict:
                raise Fallback
            if segment not in value:
                return _MISSING
            value = value[segment]
        return value

    return lookup


def _filter(
    node: Filter, env: Environment, filters: frozenset[Callable[..., Any]]
) -> Callable[[Any, Context], Any]:
    func = env.filters.get(node.name)
    if func is None or getattr(func, "filter_async", None) is not None:
        raise _Unsupported(node.name)
    with_context = bool(getattr(func, "with_context", False))
    if with_context and func not in filters:
        raise _Unsupported(node.name)
    with_env = bool(getattr(func, "with_environment", False))
    named = [(getattr(a, "name", None), _expression(a.value, env, filters)) for a in node.args]
    is_default = node.name == "default" and getattr(env.undefined, "force_liquid_default", False)

    def apply(value: Any, context: Context) -> Any:
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for name, argument in named:
            result = argument(context)
            if result is _MISSING:
                raise Fallback
            if name:
                keywords[name] = result
            else:
                positional.append(result)
        if value is _MISSING:
            if is_default:  # a missing value yields to the default, as in Liquid
                return positional[0] if positional else ""
            raise Fallback
        if with_context:
            keywords["context"] = _FilterContext(context)
        if with_env:
            keywords["environment"] = env
        try:
            return func(value, *positional, **keywords)
        except Exception:
            raise Fallback from None

    return apply
