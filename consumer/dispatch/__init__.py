"""Dispatch: the pending set and the scheduler that spend the provider's budget.

``Budget`` (sliding-window log of request starts), ``Scheduler`` (the pure,
synchronous decisions: coalescing, classes, expiry, supersession, retries, quiet
hours; the reach planner, ``reach.py`` with ``estimate.py``, choosing each push's
text from the budget) and ``Dispatcher`` (the async loop that runs them against a
``PushProvider``).
"""

from consumer.dispatch.budget import Budget
from consumer.dispatch.dispatcher import Dispatcher
from consumer.dispatch.scheduler import Request, Scheduler

__all__ = ["Budget", "Dispatcher", "Request", "Scheduler"]
