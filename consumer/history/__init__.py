"""The customers' notification history: written beside the pushes, served to IMSHOP.

entry.py      what goes in (one event's entry) and comes out (an item)
schema.py     the table; migrations/ (Alembic) creates and evolves it
database.py   the URL, the engine, errors in our words, the schema check
store.py      the ``HistoryStore`` seam and its SQL implementation
writer.py     batches in, history written, jobs on to the dispatcher
pruner.py     the per-customer and retention bounds, in the background
api.py        ``POST /imshop/history`` and ``/imshop/history/read``
lifecycle.py  the parts opened, run and closed with the service (``run``)
server.py     the API as a process of its own, from the database only (``history serve``)
command.py    ``python -m consumer history ...``
"""
