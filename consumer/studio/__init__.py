"""The product team's tools: the ``mappings`` commands.

``python -m consumer mappings check`` checks every rule and shows what its
pushes cost (``cost``); ``mappings render`` shows the push sample events give,
even on a draft (``render``, ``trial``); ``mappings preview`` serves a local
page with every rule's pushes as lock-screen cards (``preview``, ``cards``,
``phone``, ``page/``); ``mappings diff`` renders the same events with the
shipped and the edited mappings and lists what changes (``diff``). Their
options are in ``command``. They read the mappings through ``draft`` and
``outcome``, and recent Kafka records through ``tail``.

This package uses ``consumer.mapping``; the service never imports this package
(``tests/test_layout.py``).
"""
