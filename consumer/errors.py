"""The one exception tree of the service, split by what the loop must do.

    ConsumerError
    ├── PermanentError          dead-letter the event with the reason, then move on
    │   ├── InvalidEvent        bytes that are not a valid v1 event
    │   ├── RenderError         a template failed for this event
    │   ├── ProviderRejected    the provider refused the request (4xx)
    │   ├── HistoryRejected     the history database refused this event's item for good
    │   └── UnexpectedFailure   a bug met while handling the event or sending its push
    ├── TransientError          retry later with backoff; every attempt spends budget
    │   ├── ProviderUnavailable network error, timeout, 5xx, "integration unavailable"
    │   │   └── OutcomeUnknown  the request may have reached the provider
    │   ├── RateLimited         the provider said 429/420 (maybe with Retry-After)
    │   └── HistoryUnavailable  the history database cannot be reached or failed a write
    └── FatalError              stop the service: configuration cannot work
        ├── SettingsError       an environment variable is missing or invalid
        ├── MappingLoadError    the mappings cannot be loaded at start
        └── HistoryDatabaseError the history database cannot be used (unreachable at
                                start, a schema newer than the code, not migrated)

Each class carries ``retriable`` (as aiokafka's errors do) and a short ``reason``
code that goes into dead-letter headers and metrics labels.
"""

from __future__ import annotations

from typing import ClassVar


class ConsumerError(Exception):
    """Root of every error the service raises on purpose."""

    retriable: ClassVar[bool] = False
    reason: ClassVar[str] = "error"


class PermanentError(ConsumerError):
    """The event cannot be processed as it is: dead-letter it with the reason."""

    reason = "permanent_error"


class InvalidEvent(PermanentError):
    """Raw bytes that are not a valid event of contract v1.

    ``kind`` says what class of problem it is (``invalid_utf8``, ``invalid_json``,
    ``not_an_object``, ``schema_violation``, ``unknown_event_type``, ``too_large``,
    ``too_deeply_nested``, ``invalid_unicode``, ``empty_record``);
    ``path`` names the field when there is one; ``event_id`` is the record's id
    when it could be read (so the dead letter can name it).
    """

    reason = "invalid_event"

    def __init__(
        self, kind: str, message: str, *, path: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path
        self.event_id = event_id


class RenderError(PermanentError):
    """A template could not render for this event (e.g. a missing variable)."""

    reason = "render_failed"


class ProviderRejected(PermanentError):
    """The provider refused the request for good (HTTP 4xx); its message is kept.

    ``event_ids``, when set, names the only jobs of the request that were refused:
    the request's other jobs went out (AppMetrica can refuse one message of a batch).
    """

    reason = "provider_rejected"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        event_ids: frozenset[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.event_ids = event_ids


class HistoryRejected(PermanentError):
    """The history database refused an item for good (its data, not the database's state)."""

    reason = "history_rejected"


class UnexpectedFailure(PermanentError):
    """A bug met while handling one event or sending its push: dead-lettered, not retried
    (retrying a bug until the push's time-to-live would only spend the budget)."""

    reason = "unexpected_error"


class TransientError(ConsumerError):
    """Try again later: the same request may well succeed."""

    retriable = True
    reason = "transient_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(TransientError):
    """The provider could not be reached or said it is unavailable."""

    reason = "provider_unavailable"


class OutcomeUnknown(ProviderUnavailable):
    """The request was sent but no answer came back (timeout, reset, 5xx)."""

    reason = "outcome_unknown"


class RateLimited(TransientError):
    """The provider throttled us (429, or AppMetrica's 420)."""

    reason = "rate_limited"


class HistoryUnavailable(TransientError):
    """The history database could not be reached, or a write failed; retried with backoff."""

    reason = "history_unavailable"


class FatalError(ConsumerError):
    """The service cannot run with this configuration."""

    reason = "fatal"


class SettingsError(FatalError):
    """One or more environment variables are missing or invalid."""

    reason = "invalid_settings"


class MappingLoadError(FatalError):
    """The mapping files cannot be loaded; ``problems`` lists each as ``file:line: text``."""

    reason = "mappings_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class HistoryDatabaseError(FatalError):
    """The history database cannot be used as configured (the message says why and what to do)."""

    reason = "history_database"
