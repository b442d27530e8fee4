"""The AppMetrica benchmark's backlog (no timing: the run itself is the benchmark)."""

from __future__ import annotations

from consumer.local.bench.appmetrica import RULES, jobs


def test_the_backlog_is_personal_texts_of_every_rule_with_two_devices_each() -> None:
    made = jobs(40)
    assert len({job.event_id for job in made}) == 40
    assert len({job.push.message for job in made}) == 40
    assert len({job.push.rule_id for job in made}) == RULES
    assert {len(job.recipient.devices) for job in made} == {2}
