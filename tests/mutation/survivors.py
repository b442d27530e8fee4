"""The score of the last ``make mutation`` run per area, then its survivors one line each:
the mutant, its change, and why it is left when a rule below knows one (docs/testing.md
has both). The score counts timeouts as killed and leaves equivalent mutants out:
killed / (killed + survived + no test - equivalent).

    .venv/bin/python tests/mutation/survivors.py [--recheck FILE]

``--recheck FILE``: lines ``NAME<TAB>killed`` from planting survivors again against the
current tests; those are left out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
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
    (
        r"_follow__mutmut.*(>= 2 \* self|- 64:|2 / self|3 \* self|\+ 65:)",
        "equivalent: the bound's threshold (only how often stale items are dropped)",
    ),
    (
        r"time_of__mutmut.*or True",
        "equivalent: the index is a request count, never NEVER (at() handles a NEVER position)",
    ),
    (r"Slotǁ__init____mutmut.*finished = None", "equivalent: every Slot is made without it"),
    (r"popitem\(last=None\)", "equivalent: popitem() reads None as False"),
    (r"maybe_shown__mutmut.*certain=None", "equivalent: `certain` is only read as a truth value"),
    (
        r"drop__mutmut.*_epoch\(partition\) (- 1|\+ 2)|_epoch__mutmut.*get\(partition, 1\)",
        "equivalent: epochs are only compared for equality; any new value tells them apart",
    ),
    (
        r"take__mutmut.*_flying\.get\(None, 0\)",
        "equivalent: the claim lets one request at a time carry a key: its count stays 1",
    ),
    (
        r"_start_requests__mutmut.*break -> return",
        "equivalent: the slot is never None right after can_start()",
    ),
    (r"Schedulerǁadvance__mutmut.*break -> return", "equivalent: nothing follows the loop"),
    (
        r"Schedulerǁadd__mutmut.*(held = None|held_until=None\)|now_wall, \)$)",
        "left: a push arriving in its quiet hours is held by the next advance() anyway",
    ),
    (
        r"_walk_class__mutmut",
        "left: which class is the other: the rounds correct a wrong count before a push"
        " is sent in the cases tried",
    ),
    (
        r"PendingSetǁ(_enter|__init__)__mutmut.*_shareable (-=|= 1)",
        "left: only whether a plan is skipped when no waiting push may go shared",
    ),
    (
        r"group_ready__mutmut.*get\(group, (None)?\)",
        "equivalent: asked only for a ready entry's group, which always has members",
    ),
    (
        r"_leave__mutmut.*_held\.pop\(entry\.job\.event_id, \)",
        "left: a waiting entry is always held (no test found it missing)",
    ),
    (
        r"_fill__mutmut.*full = (None|False)$",
        "left: needs a job whose recipients outnumber the room left (each test job has one)",
    ),
    (
        r"expire__mutmut.*\[0\]\[0\] < now_wall",
        "left: expiry at the very instant (the loop wakes a millisecond after it anyway)",
    ),
    (
        r"Dispatcherǁ(run|__init__)__mutmut.*_running = None",
        "equivalent: read only as a truth value",
    ),
    (
        r"Dispatcherǁ__init____mutmut.*_stopping = (None|True)",
        "equivalent: run() sets it before it reads it, and nothing else reads it",
    ),
    (r"Dispatcherǁ__init____mutmut.*rng=", "left: only the seed of the retries' jitter"),
    (r"_deadline__mutmut.*later >= start", "equivalent: an equal time gives the same start"),
    (
        r"_release__mutmut.*entry\.state = None",
        "equivalent: None and DONE are both 'not waiting', and nothing asks for DONE",
    ),
    (
        r"_release__mutmut.*key is not None or key in",
        "equivalent: take() counted every released entry's key",
    ),
    (
        r"_release__mutmut.*_held\.pop\(entry\.job\.event_id, \)",
        "left: an entry in flight is always held (no test found it missing)",
    ),
    (
        r"_race__mutmut.*(delay <= 0 and event|delay < 0 or)",
        "left: the loop's immediate wake-up (event already set, time already due)",
    ),
    (
        r"SendTimesǁof__mutmut.*(limit \+ free|hold_until, \))",
        "left: differs only for a window holding more than the limit or slots already free,"
        " which the budget never passes",
    ),
    (
        r"ReachPlannerǁplan__mutmut.*(MARKETING\] -> marketing_needs = None|settled = None"
        r"|_needed\[push_class\] = None)",
        "left: only the rounds' first guess or their number (they settle on the same count)",
    ),
    (
        r"_held_quiet__mutmut.*(is not Variant\.SHARED|variant = None|self\.reach is None)"
        r"|_retry__mutmut.*(or self\.reach|self\.reach is None)",
        "left: differs only for a push beyond the walk once the planner's heap dropped it",
    ),
    (r"_confirm__mutmut.*(verdict\.refused and|provider=)", "left: log wording no test reads"),
    (
        r"_race__mutmut.*sleep\((None|1)\)",
        "left: the loop's immediate wake-up (event already set, time already due)",
    ),
    (
        r"(_walk|_hand_over_late)__mutmut.*(sent_at < now_mono|\+ _LATE_EPSILON_S > earliest)",
        "left: equality with a deadline plus its 1e-6 rounding allowance",
    ),
    (
        r"_hand_over_late__mutmut",
        "left: the hand-over beyond the walk (a boundary or its bookkeeping over several"
        " plans), not pinned by a single case",
    ),
    (
        r"(_pick_class|position|Turnsǁ__init__)__mutmut.*> 1 - _EPSILON",
        "left: a credit or share exactly 1e-9 short of a whole turn",
    ),
    (r"_leave\(entry, None\)", "equivalent: None and DONE are both 'not waiting'"),
    (r"shift >= 70|shift > 71", "equivalent: 14 digits exceed 64 bits either way (other message)"),
    (r"min\(max\(0, attempts - 1\), 65\)", "equivalent: 2**64 steps are past any cap"),
    (
        r"metadata__mutmut.*\) < limit",
        "equivalent: encode_runs gives the whole metadata when it fits exactly",
    ),
    (r"revoke__mutmut", "equivalent: assign sets or clears the last commit anyway"),
    (r"_leave\(\w+, None\)", "equivalent: None and DONE are both 'not waiting'"),
    (r"fetched__mutmut.*offset >= self\._next_fetch", "equivalent: an empty run is not added"),
    (
        r"_race__mutmut.*(delay < 0|and event\.is_set)",
        "equivalent: a set event or no delay returns at once either way",
    ),
    (
        r"_wake_at__mutmut.*<= self\._max_concurrent",
        "equivalent: only an extra wake-up when every place is taken",
    ),
    (
        r"_prune__mutmut.*\+ keep < now",
        "equivalent: next_start_at gives the same instant either way",
    ),
    (r"float\(\"-INF\"\)", "equivalent: float() reads it the same"),
    (
        r"_release__mutmut.*key is not None or key in",
        "equivalent: a settled keyed job is always in flight",
    ),
    (
        r"_encoded: str \| None = \"\"|self\._encoded = \"\"",
        "equivalent: only whether the metadata cache is used",
    ),
    (
        r"Budgetǁ__init____mutmut",
        "left: the budget's own argument check (settings validate these first)",
    ),
    (
        r"_compact__mutmut",
        "left: the heaps' compaction beyond its bound is reached by one test only",
    ),
    (
        r"reach\.track|_retry__mutmut.*reach",
        "left: matters only once the planner's heap was compacted while the push was in flight",
    ),
    (r"refused=len|unconfirmed=len|\*\*fields|fields = ", "left: log wording no test reads"),
    (
        r"metadata\[:8[01]\]|where: str = \"XXXX\"|metadata: str = \"XXXX\"",
        "left: wording of an error message",
    ),
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


AREAS = {
    "dispatch": "consumer.dispatch.",
    "offsets": "consumer.kafka.offsets.",
    "outcomes": "consumer.outcomes.",
    "renderer": "consumer.mapping.render.",
}


def area(name: str) -> str:
    return next((label for label, prefix in AREAS.items() if name.startswith(prefix)), "other")


def main(argv: list[str]) -> int:
    rechecked: set[str] = set()
    if argv[:1] == ["--recheck"]:
        for line in Path(argv[1]).read_text().splitlines():
            name, _, verdict = line.partition("\t")
            if verdict == "killed":
                rechecked.add(name)
    statuses: dict[str, str] = {}
    for line in run("results", "--all", "true").splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = "killed" if name in rechecked else status
    counts: dict[str, Counter[str]] = {label: Counter() for label in [*AREAS, "other"]}
    rows = []
    for name, status in statuses.items():
        counts[area(name)][status] += 1
        if status not in ("survived", "no tests"):
            continue
        text = change(name)
        reason = next(
            (why for pattern, why in REASONS if re.search(pattern, f"{name} {text}")),
            "left" if status == "survived" else "left: no fast test reaches it",
        )
        counts[area(name)]["equivalent"] += reason.startswith("equivalent")
        short = name.replace("consumer.", "").replace("xǁ", "").replace("ǁ", ".")
        cell = text[:110].replace("|", "\\|")  # a pipe would end the table's cell
        rows.append(f"| `{short}` | `{cell}` | {reason} |")
    print(
        "| Area | Mutants | Killed (timeouts) | Survived | No test | Not run | Equivalent | Score |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, count in counts.items():
        if not count:
            continue
        killed = count["killed"] + count["timeout"]
        left = count["survived"] + count["no tests"] - count["equivalent"]
        score = f"{100 * killed / (killed + left):.1f} %" if killed + left else "-"
        print(
            f"| {label} | {sum(v for k, v in count.items() if k != 'equivalent')} "
            f"| {killed} ({count['timeout']}) | {count['survived']} | {count['no tests']} "
            f"| {count['not checked']} | {count['equivalent']} | {score} |"
        )
    print()
    print("| Mutant | Change | Why it is left |")
    print("|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
