"""The survivors of the last ``make mutation`` run, one line each: the mutant, its change,
and the reason it is left when a rule below knows one (docs/testing.md lists them).

    .venv/bin/python tests/mutation/survivors.py [--recheck FILE]

``--recheck FILE``: lines ``NAME<TAB>killed`` from planting survivors again against the
current tests; those are left out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MUTMUT = [sys.executable, "-m", "mutmut"]

# (pattern over the mutant's name and change, why it is equivalent or left)
REASONS: list[tuple[str, str]] = [
    (r"_counted__mutmut", "equivalent: only the counter-child cache, the count is the same"),
    (r"TextPlan.render__mutmut.*(cache|key)", "equivalent: only whether the text cache is used"),
    (
        r"split\(None\)",
        "equivalent: \\x1f is whitespace to split(), a mismatch renders part by part",
    ),
    (r"strict=(None|False)|, \)\)$", "equivalent: zip's lengths are checked just before"),
    (r"autoescape=None|, strict_filters=True, \)", "equivalent: python-liquid's default"),
    (
        r"_compact.*(\+ 65|3 \* self|- 64|>= limit|< limit|or len)",
        "equivalent: the bound's threshold",
    ),
    (r"entry\.gen (=|-=|\+= 2) ", "equivalent: any new generation invalidates the old items"),
    (r"_leave\(entry, None\)", "equivalent: None and DONE are both 'not waiting'"),
    (r"shift >= 70|shift > 71", "equivalent: 14 digits exceed 64 bits either way (other message)"),
    (r"min\(max\(0, attempts - 1\), 65\)", "equivalent: 2**64 steps are past any cap"),
    (r"log\.|\"push_|\"event_|logger|delay_s=|retry_in_s", "left: log wording no test reads"),
]


def run(*args: str) -> str:
    return subprocess.run([*MUTMUT, *args], cwd=REPO, capture_output=True, text=True).stdout


def change(name: str) -> str:
    lines = run("show", name).splitlines()
    minus = [
        line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")
    ]
    plus = [
        line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")
    ]
    return f"{' / '.join(minus)} -> {' / '.join(plus) or '(removed)'}"


def main(argv: list[str]) -> int:
    rechecked: set[str] = set()
    if argv[:1] == ["--recheck"]:
        for line in Path(argv[1]).read_text().splitlines():
            name, _, verdict = line.partition("\t")
            if verdict == "killed":
                rechecked.add(name)
    survivors = [
        line.split(":")[0].strip()
        for line in run("results").splitlines()
        if line.strip().endswith(": survived")
    ]
    for name in survivors:
        if name in rechecked:
            continue
        text = change(name)
        reason = next(
            (why for pattern, why in REASONS if re.search(pattern, f"{name} {text}")), "left"
        )
        short = name.replace("consumer.", "").replace("xǁ", "").replace("ǁ", ".")
        print(f"| `{short}` | `{text[:110]}` | {reason} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
