"""What the studio tests share besides fixtures (a module of its own: every test folder
has a ``conftest``, so ``from conftest import`` finds whichever was loaded first)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from consumer.studio.preview import Preview

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"
# The studio tests' own rules: their texts stay put while the shipped copy is edited.
FIXTURE = Path(__file__).resolve().parent / "mappings"


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (found exactly once) with ``new``; the line it started on."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


ServePreview = Callable[..., contextlib.AbstractAsyncContextManager[tuple[str, Preview]]]
