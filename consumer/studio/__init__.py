"""The product team's tools: a live preview page of every push.

``python -m consumer mappings preview`` serves a local page with every rule's
pushes as lock-screen cards (``preview``, ``cards``, ``phone``, ``page/``). It
reads the mappings through ``draft`` and ``outcome``, and recent Kafka records
through ``tail``. The service never imports this package
(``tests/test_layout.py``).
"""
