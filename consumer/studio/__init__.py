"""The product team's tools: a live preview page and diffs before shipping.

``python -m consumer mappings preview`` serves a local page with every rule's
pushes as lock-screen cards (``preview``, ``cards``, ``phone``, ``page/``);
``python -m consumer mappings diff`` renders the same events with the shipped
and the edited mappings and lists what changes (``diff``). Both read the
mappings through ``draft`` and ``outcome``, and recent Kafka records through
``tail``. The service never imports this package (``tests/test_layout.py``).
"""
