"""Plant mutmut's mutants again, one at a time, in a copy of the code, and run the given
tests against each: for survivors of a run that tests added since may kill.

    .venv/bin/python tests/mutation/recheck.py TESTS NAME... > recheck.tsv
    .venv/bin/python tests/mutation/survivors.py --recheck recheck.tsv

``TESTS``: comma-separated pytest paths. Prints ``NAME<TAB>killed`` or
``NAME<TAB>survived`` per mutant (the fast tests only, with the mutation profile).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTEST = [
    "-x",
    "-q",
    "-p",
    "no:cacheprovider",
    "--hypothesis-profile=mutation",
    "-m",
    "not kafka and not browser and not postgres",
]


def plant(name: str, root: Path) -> None:
    """Apply ``mutmut show NAME``'s change (a diff of one function) to the copy."""
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name], cwd=REPO, capture_output=True, text=True
    ).stdout.splitlines()
    path = next(line[4:].strip() for line in shown if line.startswith("--- "))
    body = [line for line in shown if line[:1] in " -+" and not line.startswith(("---", "+++"))]
    old = [line[1:] for line in body if line[:1] in " -"]
    new = [line[1:] for line in body if line[:1] in " +"]
    function = re.search(r"(?:ǁ|\.x_)([A-Za-z0-9_]+?)__mutmut_\d+$", name)
    if function is None:
        raise SystemExit(f"{name}: not a mutant name")
    text = (root / path).read_text(encoding="utf-8")
    start = text.index(f"def {function.group(1)}(")
    start = text.rfind("\n", 0, start) + 1  # the line's start: the def line may be mutated
    # With its context first; then the changed lines alone, for a context that holds a
    # docstring's lines (shown at their own indentation, not one level out).
    removed = [line[1:] for line in body if line[:1] == "-"]
    added = [line[1:] for line in body if line[:1] == "+"]
    for old_lines, new_lines in ((old, new), (removed, added)):
        for indent in ("    ", ""):  # methods are shown one level out
            before = "\n".join(indent + line if line else line for line in old_lines)
            after = "\n".join(indent + line if line else line for line in new_lines)
            at = text.find(before, start)
            if before and at >= 0:
                patched = text[:at] + after + text[at + len(before) :]
                (root / path).write_text(patched, encoding="utf-8")
                return
    raise SystemExit(f"{name}: its passage is no longer in {path}")


def killed(name: str, tests: list[str]) -> bool:
    with tempfile.TemporaryDirectory(prefix="recheck-") as tmp:
        root = Path(tmp)
        for folder in ("consumer", "tests", "mappings"):
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(REPO / folder, root / folder, ignore=ignore)
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        plant(name, root)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", *tests, *PYTEST],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        return run.returncode not in (0, 5)  # 5: no test ran


def main(argv: list[str]) -> int:
    tests, names = argv[0].split(","), argv[1:]
    for name in names:
        try:
            verdict = "killed" if killed(name, tests) else "survived"
        except SystemExit as cannot:  # one mutant that cannot be planted ends only itself
            verdict = f"not planted: {cannot}"
        print(f"{name}\t{verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
