"""What the demo shows at the end: the summary (each push on the way is the simulator's
``PushPrinter``)."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from consumer.push import Outcome
from consumer.replay.select import DeadLetter

if TYPE_CHECKING:
    from consumer.app import Service
    from consumer.local.simulators.imshop import ImshopSimulator

WIDTH = 96  # the legend's lines


def event_outcomes(service: Service) -> Counter[str]:
    """Events counted by outcome so far (every event type together)."""
    counts: Counter[str] = Counter()
    for metric in service.metrics.registry.collect():
        if metric.name != "push_events":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["outcome"]] += int(sample.value)
    return counts


def dead_letters_written(service: Service) -> int:
    total = 0
    for metric in service.metrics.registry.collect():
        if metric.name == "push_dead_letters":
            total += sum(int(s.value) for s in metric.samples if s.name.endswith("_total"))
    return total


@dataclass(frozen=True, slots=True)
class DemoSummary:
    produced: int
    outcomes: dict[str, int]
    requests: int
    recipients: int
    max_recipients: int
    shared_requests: int  # requests that carried more than one customer
    dead_letters: int
    dead_lettered: tuple[DeadLetter, ...]  # as read back from the dead-letter topic
    violations: int
    max_in_window: int
    wall_s: float

    @property
    def accounted(self) -> int:
        return sum(self.outcomes.values())

    @property
    def clean(self) -> bool:
        """Every event has an outcome, every dead letter was written, no limit was broken."""
        return (
            self.accounted == self.produced
            and self.dead_letters == self.outcomes.get(Outcome.DEAD_LETTERED, 0)
            and self.violations == 0
        )

    @staticmethod
    def settled(service: Service, expected: int) -> bool:
        outcomes = event_outcomes(service)
        return sum(outcomes.values()) >= expected and dead_letters_written(service) >= outcomes.get(
            Outcome.DEAD_LETTERED, 0
        )

    @classmethod
    def collect(
        cls,
        service: Service,
        simulator: ImshopSimulator,
        *,
        produced: int,
        wall_s: float,
        dead_lettered: Sequence[DeadLetter] = (),
    ) -> DemoSummary:
        stats = simulator.stats()
        sizes = [len(p["userIds"]) for p in simulator.pushes]
        return cls(
            produced=produced,
            outcomes=dict(event_outcomes(service)),
            requests=len(sizes),
            recipients=sum(sizes),
            max_recipients=max(sizes, default=0),
            shared_requests=sum(1 for size in sizes if size > 1),
            dead_letters=dead_letters_written(service),
            dead_lettered=tuple(dead_lettered),
            violations=int(stats["violations"]),
            max_in_window=int(stats["max_in_window"]),
            wall_s=wall_s,
        )


# What each outcome means, for the legend (only the outcomes of the run are shown).
OUTCOME_MEANING = {
    Outcome.SENT: "its push was in a request the simulator accepted (one customer each)",
    Outcome.SUPERSEDED: "a newer status of the same order came before this one's push went "
    "out, so the customer gets only the newest",
    Outcome.SKIPPED: "no push by design: no rule for it, a repeated event id, or no recipient id",
    Outcome.EXPIRED: "its time-to-live passed while it waited for the budget",
    Outcome.DEAD_LETTERED: "it cannot become a push: written to the dead-letter topic with the "
    "reason, for a fix and `dlq replay`",
}


def print_summary(summary: DemoSummary, out: TextIO, *, window_s: float, limit: int) -> None:
    """The figures, then what they mean. Each section is a list of lines, printed in turn."""
    sections = [
        figure_lines(summary, window_s=window_s, limit=limit),
        legend_lines(summary, window_s=window_s, limit=limit),
    ]
    print("\n".join(line for section in sections for line in ["", *section]), file=out, flush=True)


def figure_lines(summary: DemoSummary, *, window_s: float, limit: int) -> list[str]:
    outcomes = ", ".join(f"{name} {count}" for name, count in sorted(summary.outcomes.items()))
    per_request = summary.recipients / summary.requests if summary.requests else 0.0
    return [
        "Summary",
        f"  events published:   {summary.produced}",
        f"  events by outcome:  {outcomes or 'none'} "
        f"(accounted for: {summary.accounted}/{summary.produced})",
        f"  provider requests:  {summary.requests} for {summary.produced} events",
        f"  recipients:         {summary.recipients} "
        f"({per_request:.1f} per request, at most {summary.max_recipients})",
        f"  dead letters:       {summary.dead_letters}",
        f"  budget:             at most {summary.max_in_window}/{limit} requests "
        f"in one {window_s:g} s window; violations: {summary.violations}",
        f"  wall time:          {summary.wall_s:.1f} s",
        f"  result:             {'OK' if summary.clean else 'INCOMPLETE'}",
    ]


def legend_lines(summary: DemoSummary, *, window_s: float, limit: int) -> list[str]:
    notes = [
        f"{outcome} {count}: {meaning}."
        for outcome, meaning in OUTCOME_MEANING.items()
        if (count := summary.outcomes.get(outcome, 0))
    ]
    if summary.requests:
        notes.append(
            f"recipients {summary.recipients} in {summary.requests} requests: identical texts "
            f"share one request, so {summary.shared_requests} requests carried several customers, "
            f"the largest {summary.max_recipients} (the bonus campaign: its extra customers and "
            "the samples' own campaign events get the same text); a personal text (an order "
            "number, an amount) needs a request of its own."
        )
    notes.append(
        f"budget: the simulator enforces {limit} requests per {window_s:g} s, as IMSHOP does per "
        "minute, and counts every request beyond it as a violation."
    )
    if summary.clean:
        notes.append(
            "result OK: every published event has exactly one outcome, every dead letter was "
            "written, and no request broke the limit."
        )
    else:
        missing = summary.produced - summary.accounted
        notes.append(
            f"result INCOMPLETE: {missing} events had no outcome yet, or a dead letter was not "
            "written, or the limit was broken; their offsets stay uncommitted, so a restarted "
            "service would pick them up."
        )
    lines = ["What the figures mean"]
    for note in notes:
        lines += textwrap.wrap(note, WIDTH, initial_indent="  ", subsequent_indent="      ")
    return lines + _dead_letter_lines(summary)


def _dead_letter_lines(summary: DemoSummary) -> list[str]:
    if not summary.dead_lettered:
        return []
    lines = ["", "The dead letters (`python -m consumer dlq replay --dry-run` lists them too):"]
    for letter in summary.dead_lettered:
        which = letter.dlq.get("event_id") or f"key {(letter.key or b'').decode(errors='replace')}"
        lines += textwrap.wrap(
            f"{letter.reason} ({which}): {letter.dlq.get('message', '')}",
            WIDTH,
            initial_indent="  ",
            subsequent_indent="      ",
        )
    return lines
