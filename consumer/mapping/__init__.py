"""Declarative mappings: YAML rules with Liquid templates that turn events into pushes.

The service uses ``load_mappings`` at start and ``MappingReloader`` to follow
edits; ``MappingSet.render`` turns one event into a ``RenderedPush`` (or None
when no rule matches). The product team's tools (``consumer.studio``) build
their drafts on ``loader.check_sources``: every rule that can be read, with
every problem found.
"""

from consumer.mapping.loader import load_mappings
from consumer.mapping.reload import MappingReloader
from consumer.mapping.rules import MappingSet, Rule

__all__ = ["MappingReloader", "MappingSet", "Rule", "load_mappings"]
