"""Which pushes may share a `send-batch` request: one rule's, up to the element cap.

A request names one group and one tag, and the push-campaign report breaks
sends down by exactly those two (group at the first level, tag at the
second). The provider sends each class to its own group and tags each
request with the rule id, so a request carries the pushes of one rule, and
the report's rows are the mappings' rules.

The dispatcher puts the jobs of one coalesce key into one request (the
provider allows one envelope per request), so the key is ``(class, rule,
batch)``. ``RuleBatches`` numbers each rule's batches as pushes arrive: a push
whose text is already in the rule's open batch joins it, so identical texts
travel together; a new text joins the open batch while its elements fit
``max_elements`` and opens the next batch when they do not. A text takes one
element per five device id types of its devices, so the cap counts elements,
not texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consumer.providers.appmetrica.payload import elements_for, text_key
from consumer.push import PushClass, PushJob
from consumer.settings import AppMetricaSettings

BatchKey = tuple[PushClass, str, int]


def group_name(settings: AppMetricaSettings, push_class: PushClass) -> str:
    """The push group a class is sent to (found or created at start)."""
    return f"{settings.group_name}-{push_class.value}"


@dataclass(slots=True)
class _OpenBatch:
    number: int = 0
    elements: int = 0
    texts: dict[str, frozenset[str]] = field(default_factory=dict)  # text -> its id types


class RuleBatches:
    def __init__(self, max_elements: int) -> None:
        if max_elements < 2:
            raise ValueError("a batch must hold at least 2 elements (one text, up to 7 id types)")
        self._max = max_elements
        self._open: dict[tuple[PushClass, str], _OpenBatch] = {}

    def key(self, job: PushJob) -> BatchKey:
        rule = (job.push.push_class, job.push.rule_id)
        batch = self._open.setdefault(rule, _OpenBatch())
        if not job.recipient.devices:  # never sent (the dispatcher skips it): takes no room
            return (*rule, batch.number)
        text = text_key(job)
        had = batch.texts.get(text, frozenset())
        types = had | {device.id_type for device in job.recipient.devices}
        grows = elements_for(len(types)) - (elements_for(len(had)) if text in batch.texts else 0)
        if batch.elements + grows > self._max:
            batch = self._open[rule] = _OpenBatch(number=batch.number + 1)
            grows = elements_for(len(types))
        batch.texts[text] = types
        batch.elements += grows
        return (*rule, batch.number)
