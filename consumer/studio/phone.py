"""What a phone's lock screen shows of a push: lines, and where it cuts with "…".

Neither Apple nor Google publishes character counts: a phone cuts by width,
which depends on the screen, the font size the customer chose and the letters.
The model below uses what is documented or measured, so the preview cuts where
a typical phone cuts (a little earlier or later on a given phone):

- **iOS, lock screen and Notification Center**: the title on one line, the body
  on up to four lines, the rest cut with "…"; about 30–40 characters a line, and
  a title beside the "now" timestamp holds about 35 characters (Braze, "iOS
  character count guidelines" in *Create iOS rich notifications*; its *Push
  message and image formats* table gives the lock screen about 160 characters,
  four lines of 40).
- **Android, collapsed** (how the lock screen shows it): "By default, the
  notification's text content is truncated to fit one line" (Android
  Developers, *Create a notification*); the title is one line too. Braze's table
  gives the Android lock screen about 49 characters. No count is published for
  the title, which is set in a larger, medium-weight font: 43 is our estimate.
- **Android, expanded** (pulled down, ``BigTextStyle``): the text runs to at
  most 13 lines (AOSP ``Notification.BigTextStyle.MAX_LINES``); Braze's table
  gives the notification drawer about 597 characters.

Lines break at ordinary spaces only: the service writes non-breaking spaces
(``1 500 ₽``, ``№ 10452``) exactly so that a phone never splits them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ELLIPSIS = "…"
_BREAKS = " \t\n"  # not U+00A0 or U+202F: those are there to keep words together


@dataclass(frozen=True, slots=True)
class Block:
    """A text area of the lock screen: so many lines of about so many characters."""

    lines: int
    chars_per_line: int


@dataclass(frozen=True, slots=True)
class Screen:
    name: str
    title: Block
    body: Block
    note: str


IOS_LOCK_SCREEN = Screen(
    "iOS lock screen",
    title=Block(1, 35),
    body=Block(4, 40),
    note="title 1 line (~35 characters), text up to 4 lines (~40 characters each)",
)
ANDROID_COLLAPSED = Screen(
    "Android lock screen",
    title=Block(1, 43),
    body=Block(1, 49),
    note="collapsed: title 1 line (~43 characters), text 1 line (~49 characters)",
)
ANDROID_EXPANDED = Screen(
    "Android, expanded",
    title=Block(1, 43),
    body=Block(13, 49),
    note="pulled down: text up to 13 lines",
)
SCREENS = {
    "ios": IOS_LOCK_SCREEN,
    "android": ANDROID_COLLAPSED,
    "android_expanded": ANDROID_EXPANDED,
}


@dataclass(frozen=True, slots=True)
class Shown:
    """The lines a block shows, and whether the phone cut the text."""

    lines: tuple[str, ...]
    cut: bool
    length: int

    def as_json(self) -> dict[str, Any]:
        return {"lines": list(self.lines), "cut": self.cut, "length": self.length}


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap at ordinary spaces; a word longer than a line is split."""
    flat = _flatten(text)
    return [flat[start:end] for start, end in _spans(flat, width)]


def _flatten(text: str) -> str:
    """Runs of ordinary white space as one space (the phone shows no line breaks)."""
    words, word = [], ""
    for char in text:
        if char in _BREAKS:
            if word:
                words.append(word)
            word = ""
        else:
            word += char
    if word:
        words.append(word)
    return " ".join(words)


def _spans(flat: str, width: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(flat):
        end = start + width
        if end >= len(flat):
            spans.append((start, len(flat)))
            break
        space = flat.rfind(" ", start, end + 1)
        if space > start:
            spans.append((start, space))
            start = space + 1
        else:  # one word wider than the line
            spans.append((start, end))
            start = end
    return spans


def fit(text: str, block: Block) -> Shown:
    """The lines of ``block`` that ``text`` fills; the last one ends in "…" if cut."""
    flat = _flatten(text)
    spans = _spans(flat, block.chars_per_line)
    if len(spans) <= block.lines:
        return Shown(tuple(flat[a:b] for a, b in spans), cut=False, length=len(text))
    # The last line fills up to its width and is cut there, mid-word if need be,
    # as a phone's tail truncation does.
    kept = [flat[a:b] for a, b in spans[: block.lines - 1]]
    rest = flat[spans[block.lines - 1][0] :]
    kept.append(rest[: block.chars_per_line - 1].rstrip() + ELLIPSIS)
    return Shown(tuple(kept), cut=True, length=len(text))


def lock_screens(title: str, summary: str) -> dict[str, Any]:
    """Each screen's lines for this push, for the preview page."""
    return {
        key: {
            "name": screen.name,
            "note": screen.note,
            "title": fit(title, screen.title).as_json(),
            "body": fit(summary, screen.body).as_json(),
        }
        for key, screen in SCREENS.items()
    }
