"""Declarative mappings: YAML rules with Liquid templates that turn events into pushes.

The service uses ``load_mappings`` at start and ``MappingReloader`` to follow
edits; ``MappingSet.render`` turns one event into a ``RenderedPush`` (or None
when no rule matches). Previews use ``load_draft``: every rule that can be
read, with every problem found (``trial.py`` renders sample events with it).
"""

from consumer.mapping.loader import Draft, load_draft, load_mappings
from consumer.mapping.reload import MappingReloader
from consumer.mapping.rules import MappingSet, Rule

__all__ = ["Draft", "MappingReloader", "MappingSet", "Rule", "load_draft", "load_mappings"]
