"""The progress bar's whole output, on a terminal and in a log."""

from __future__ import annotations

import io

import pytest

from consumer.replay import progress
from consumer.replay.progress import ProgressBar


def bar(done: int, total: int, note: str = "") -> str:
    filled = round(30 * done / total)
    return f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}{f'  {note}' if note else ''}"


def test_a_log_gets_one_line_per_quarter_and_the_last_line_once() -> None:
    out = io.StringIO()
    progress_bar = ProgressBar(out, interactive=False)

    progress_bar.start(8)
    for done in range(1, 9):
        progress_bar.update(done, f"matched {done}")
    progress_bar.finish()

    assert out.getvalue().splitlines() == [
        bar(0, 8),
        bar(2, 8, "matched 2"),
        bar(4, 8, "matched 4"),
        bar(6, 8, "matched 6"),
        bar(8, 8, "matched 8"),
    ]


def test_a_terminal_redraws_in_place_and_clears_a_longer_tail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "REDRAW_S", 0.0)  # every update draws
    out = io.StringIO()
    progress_bar = ProgressBar(out, interactive=True)

    progress_bar.start(2)
    progress_bar.update(1, "matched 1 of a long list")
    progress_bar.update(2, "done")
    progress_bar.finish()

    clear = "\x1b[K"
    assert out.getvalue() == (
        f"\r{bar(0, 2)}{clear}"
        f"\r{bar(1, 2, 'matched 1 of a long list')}{clear}"
        f"\r{bar(2, 2, 'done')}{clear}"
        "\n"
    )
