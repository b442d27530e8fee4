"""A text progress bar on stderr, with no dependency: ``[#####.....]  512/1024  note``.

On a terminal the bar redraws in place (at most ten times a second); in a log
file or CI output it prints one line per quarter, so the log stays short. A line
identical to the one last shown is not shown again.
"""

from __future__ import annotations

import time
from typing import TextIO

WIDTH = 30
CLEAR_TO_END = "\x1b[K"  # a shorter line must not leave the tail of the longer one
REDRAW_S = 0.1
STEPS = 4  # lines printed when the stream is not a terminal


class ProgressBar:
    def __init__(self, stream: TextIO, *, interactive: bool | None = None) -> None:
        self._stream = stream
        self._interactive = stream.isatty() if interactive is None else interactive
        self._total = 0
        self._done = 0
        self._note = ""
        self._drawn_at = 0.0
        self._step = 0
        self._started = False
        self._shown = ""

    def start(self, total: int) -> None:
        self._total = total
        self._started = True
        self._draw(force=True)

    def update(self, done: int, note: str = "") -> None:
        self._done, self._note = done, note
        self._draw()

    def finish(self) -> None:
        if not self._started:
            return
        self._started = False
        self._draw(force=True)
        if self._interactive:
            self._stream.write("\n")
            self._stream.flush()

    def line(self) -> str:
        share = self._done / self._total if self._total else 1.0
        filled = round(WIDTH * min(share, 1.0))
        bar = "#" * filled + "." * (WIDTH - filled)
        note = f"  {self._note}" if self._note else ""
        return f"[{bar}] {self._done}/{self._total}{note}"

    def _draw(self, *, force: bool = False) -> None:
        if self._interactive:
            now = time.monotonic()
            if force or now - self._drawn_at >= REDRAW_S:
                self._drawn_at = now
                self._show("\r{}" + CLEAR_TO_END)
            return
        step = STEPS * self._done // self._total if self._total else STEPS
        if force or step > self._step:
            self._step = step
            self._show("{}\n")

    def _show(self, form: str) -> None:
        line = self.line()
        if line != self._shown:
            self._shown = line
            self._stream.write(form.format(line))
            self._stream.flush()
