"""A template Liquid cannot read, explained in plain words with the fix.

Liquid's own messages name its tokenizer's view ("unexpected '{'", "unexpected
tag 'elseif'"); a product manager needs to know which tag is not closed and
what to type instead. Unclosed ``{% ... %}`` and ``{{ ... }}`` are found by
scanning the text first (they are the most common slip, and Liquid reports
them at the wrong place); tag typos get a suggestion.
"""

from __future__ import annotations

import difflib
import re

from liquid.exceptions import LiquidError

TAG_WORDS = (
    "if",
    "elsif",
    "else",
    "endif",
    "unless",
    "endunless",
    "case",
    "when",
    "endcase",
    "for",
    "endfor",
    "assign",
    "capture",
    "endcapture",
    "comment",
    "endcomment",
    "raw",
    "endraw",
    "break",
    "continue",
)
_TYPOS = {"elseif": "elsif", "elif": "elsif", "else_if": "elsif"}
_CLOSERS = {"{%": "%}", "{{": "}}"}
_OPENER = re.compile(r"\{[%{]")
_END_WORD = re.compile(r"\{%-?\s*end\s+(\w+)")
_EXPECTED_END = re.compile(r"expected tag (end\w+)")
_UNEXPECTED_TAG = re.compile(r"unexpected tag '([^']+)'")


def explain_syntax(source: str, exc: LiquidError) -> str:
    """What is wrong with a template that does not parse, and how to fix it."""
    message = str(exc.message or exc).splitlines()[0]
    unclosed = unclosed_tag(source)
    if unclosed:
        return unclosed
    if "not operator" in message:
        return (
            "Liquid has no `not` in conditions; use `{% unless field %}…{% endunless %}`, "
            "or swap the two branches of the `{% if %}`"
        )
    if match := _UNEXPECTED_TAG.match(message):
        return _unknown_tag(match.group(1), source)
    if match := _EXPECTED_END.match(message):
        end = match.group(1)
        opener = end.removeprefix("end")
        return f"a `{{% {opener} %}}` is not closed: add `{{% {end} %}}` where its text ends"
    near = _near(source, getattr(exc.token, "start_index", -1) if exc.token else -1)
    return f"the template cannot be read ({message}){near}"


def unclosed_tag(source: str) -> str | None:
    """The first ``{%`` or ``{{`` not closed before the next one opens, in words."""
    for match in _OPENER.finditer(source):
        start, opener = match.start(), match.group()
        closer = _CLOSERS[opener]
        end = source.find(closer, start + 2)
        following = _OPENER.search(source, start + 2)
        if end != -1 and (following is None or end < following.start()):
            continue
        stop = following.start() if following else len(source)
        piece = " ".join(source[start:stop].split())
        shown = piece if len(piece) <= 40 else piece[:39] + "…"
        what = "tag" if opener == "{%" else "output"
        hint = ""
        if piece.endswith("}") and not piece.endswith(closer):
            hint = f" (it ends with `}}`, write `{closer}`)"
        return f"the {what} `{shown}` is not closed: end it with `{closer}`{hint}"
    return None


def _unknown_tag(tag: str, source: str) -> str:
    if tag == "end":
        found = _END_WORD.search(source)
        word = found.group(1) if found else "if"
        return f"`{{% end {word} %}}` is written as one word: `{{% end{word} %}}`"
    if tag in TAG_WORDS:
        return (
            f"`{{% {tag} %}}` is in the wrong place: it has no matching opening tag "
            "before it (an extra one, or one closing a tag that was not opened?)"
        )
    suggestion = _TYPOS.get(tag) or next(
        iter(difflib.get_close_matches(tag, TAG_WORDS, n=1, cutoff=0.6)), None
    )
    hint = f"; did you mean `{{% {suggestion} %}}`?" if suggestion else ""
    return f"`{{% {tag} %}}` is not a tag push templates know{hint}"


def _near(source: str, index: int) -> str:
    if index < 0 or index >= len(source):
        return ""
    piece = " ".join(source[max(0, index - 15) : index + 25].split())
    return f", near `{piece}`"
