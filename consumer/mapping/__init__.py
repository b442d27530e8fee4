"""Declarative mappings: YAML rules with Liquid templates that turn events into pushes.

The service uses ``load_mappings`` at start and ``MappingReloader`` to follow
edits; ``MappingSet.render`` turns one event into a ``RenderedPush`` (or None
when no rule matches).
"""

from consumer.mapping.loader import load_mappings
from consumer.mapping.reload import MappingReloader
from consumer.mapping.rules import MappingSet, Rule

__all__ = ["MappingReloader", "MappingSet", "Rule", "load_mappings"]
