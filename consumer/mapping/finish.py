"""The last touch on every rendered text before it can reach a phone.

Two jobs, both applied after Liquid (or the compiled fast path), so both paths
give the same push:

- **Clean**: event values are the shop's data, not ours. Control characters (a
  NUL, a terminal colour code such as ``ESC[31m``, a bell) and the invisible
  marks that reverse the direction of text would reach the lock screen as
  boxes, garbage or a title that reads backwards. They are removed rather than
  refused: the customer still gets the push about their order, without the
  bytes no phone can show. Line breaks and tabs become spaces (a push title is
  one line).
- **Typeset** (title and summary): the small rules a Russian editor applies
  everywhere, so the product team need not type invisible characters: ``№``
  is joined to the number after it with a non-breaking space (a phone never
  wraps «№» away from «10452»), a period after a value that already ends with
  one is dropped (no «ул. Ленина, 12..»), and a space left before punctuation
  or doubled by an empty ``{% if %}`` goes.
"""

from __future__ import annotations

import functools
import re

from consumer.mapping.filters import NBSP

# ESC-introduced sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \),
# and two-character escapes; then any other C0/C1 control character or DEL.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile("[\t\n\r]+")
_UNWANTED = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

_NUMBER_SIGN = re.compile("№[ \u00a0]+(?=\\S)")
_DOUBLE_STOP = re.compile(r"(?<![.])([.!?…])\.(?![.])")
_SPACE_BEFORE_MARK = re.compile(r" +(?=[.,;:!?)»])")
_SPACES = re.compile(r" {2,}")


def has_controls(text: str) -> bool:
    return _UNWANTED.search(text) is not None


def clean(text: str) -> str:
    """Without control characters or escape codes; breaks and tabs as spaces."""
    if _UNWANTED.search(text) is None:  # the common case: nothing to do
        return text
    text = _ESCAPES.sub("", text)
    text = _BREAKS.sub(" ", text)
    return _CONTROLS.sub("", text).strip()


def typeset(text: str) -> str:
    """Russian typography for a push's title or summary."""
    if "№" in text:
        text = _NUMBER_SIGN.sub("№" + NBSP, text)
    if ".." in text or "!." in text or "?." in text or "…." in text:
        text = _DOUBLE_STOP.sub(r"\1", text)
    if "  " in text:
        text = _SPACES.sub(" ", text)
    if _space_before_mark(text):
        text = _SPACE_BEFORE_MARK.sub("", text)
    return text


def _space_before_mark(text: str) -> bool:
    # Substring tests: a regex scan stops at every space of the text (about 3x slower).
    return (
        " ." in text
        or " ," in text
        or " :" in text
        or " ;" in text
        or " !" in text
        or " ?" in text
        or " )" in text
    )


# The same texts come again and again (a campaign, a constant summary, a status
# message), and a lookup costs a tenth of the checks; personal titles just miss.
@functools.lru_cache(maxsize=8192)
def finish(text: str) -> str:
    """A title or summary as it may reach a phone: cleaned, then typeset."""
    return typeset(clean(text))
