"""What the Kafka source saw of the broker lately: for readiness and for the shutdown.

aiokafka retries by itself and tells the application nothing while a broker is
dead or hung: ``getmany`` just returns nothing, a commit waits. ``KafkaStatus``
keeps, for each sign of trouble, since when it has lasted:

- commits: the last one failed or timed out (until one succeeds), or one has
  been waiting for its answer;
- fetches: an assigned partition that is not paused had no fetch answer
  (aiokafka stamps each partition's answer; records handed out count too);
- the group: ``getmany`` had to give up waiting for a rebalance to finish;
- topics: subscribed topics the cluster does not know (said at once: nothing
  is read from them until they exist).

``problems()`` names each that has lasted ``failing_after_s``, in plain words.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping

from consumer.clock import Clock

_SHOWN_PARTITIONS = 5


class KafkaStatus:
    def __init__(self, clock: Clock, failing_after_s: float) -> None:
        self._clock = clock
        self.failing_after_s = failing_after_s
        self._commit_failing_since: float | None = None
        self._commit_error = ""
        self._commit_waiting_since: float | None = None
        # partition -> (aiokafka's answer stamp, when we saw it change)
        self._answers: dict[Hashable, tuple[int | None, float]] = {}
        self._rebalance_stuck_since: float | None = None
        self.missing_topics: frozenset[str] = frozenset()

    # ---- what the source reports

    def commit_started(self) -> None:
        if self._commit_waiting_since is None:
            self._commit_waiting_since = self._clock.monotonic()

    def commit_ended(self, error: str | None = None) -> None:
        """A commit got its answer: ``error`` says why it failed, None if it did not."""
        self._commit_waiting_since = None
        if error is None:
            self._commit_failing_since = None
            return
        if self._commit_failing_since is None:
            self._commit_failing_since = self._clock.monotonic()
        self._commit_error = error

    def commit_timed_out(self, timeout_s: float) -> None:
        if self._commit_failing_since is None:
            self._commit_failing_since = self._clock.monotonic()
        self._commit_error = f"no answer within {timeout_s:g} s"

    def fetch_answers(
        self, stamps: Mapping[Hashable, int | None], delivered: Collection[Hashable]
    ) -> None:
        """The answer stamps of the partitions being fetched now (assigned, not paused).

        A partition that was not being fetched before starts its wait now.
        """
        now = self._clock.monotonic()
        seen: dict[Hashable, tuple[int | None, float]] = {}
        for tp, stamp in stamps.items():
            before = self._answers.get(tp)
            fresh = before is None or before[0] != stamp or tp in delivered
            seen[tp] = (stamp, now) if fresh or before is None else before
        self._answers = seen

    def getmany_ended(self, *, waited_for_rebalance: bool) -> None:
        if not waited_for_rebalance:
            self._rebalance_stuck_since = None
        elif self._rebalance_stuck_since is None:
            self._rebalance_stuck_since = self._clock.monotonic()

    # ---- what the service asks

    def commits_stalled(self, patience_s: float) -> bool:
        """Commits are failing, or one has waited ``patience_s`` for its answer."""
        now = self._clock.monotonic()
        if self._commit_failing_since is not None:
            return True
        return self._commit_waiting_since is not None and now - self._commit_waiting_since >= (
            patience_s
        )

    def problems(self) -> list[str]:
        """Each sign of trouble that has lasted ``failing_after_s``, in plain words."""
        now, limit = self._clock.monotonic(), self.failing_after_s
        found = []
        if self.missing_topics:
            found.append(
                f"topics not in Kafka (read once created): {', '.join(sorted(self.missing_topics))}"
            )
        if (since := self._commit_failing_since) is not None and now - since >= limit:
            found.append(f"commits failing for {now - since:.0f} s ({self._commit_error})")
        elif (since := self._commit_waiting_since) is not None and now - since >= limit:
            found.append(f"a commit unanswered for {now - since:.0f} s")
        quiet = {tp: now - seen for tp, (_, seen) in self._answers.items() if now - seen >= limit}
        if quiet:
            names = sorted(_name(tp) for tp in quiet)
            shown = ", ".join(names[:_SHOWN_PARTITIONS]) + (" ..." if len(names) > 5 else "")
            found.append(
                f"no fetch answer for {max(quiet.values()):.0f} s "
                f"from {len(quiet)} partition(s): {shown}"
            )
        if (since := self._rebalance_stuck_since) is not None and now - since >= limit:
            found.append(f"the group rebalance has not finished for {now - since:.0f} s")
        return found


def _name(tp: Hashable) -> str:
    topic, partition = getattr(tp, "topic", None), getattr(tp, "partition", None)
    return f"{topic}/{partition}" if topic is not None else str(tp)
