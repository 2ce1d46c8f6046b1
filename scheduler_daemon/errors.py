"""One exception tree for the whole daemon.

::

    SchedulerError
    ├── ConfigError              bad settings: the CLI prints it and exits 2
    ├── InvalidPostError         a row we cannot schedule or publish as written
    │   ├── InvalidScheduleError     null/invalid date, time or timezone
    │   └── NoConnectionError        no (or more than one) platform connection
    └── PublishError             a publish attempt failed (raised by platform adapters)
        ├── PermanentPublishError    the post goes back to 'draft' with the message
        │   ├── AuthError                token invalid/revoked: "reconnect <platform>"
        │   │   └── RefreshableAuthError     expired: a token refresh may cure it (adapters refresh once)
        │   ├── ContentRejectedError     the platform (or our validation) rejected the content
        │   │   └── MediaTooLargeError       a media download went past its cap
        │   └── PlatformConfigError      a setting or the target is wrong (names the setting)
        │       └── AddressNotAllowedError   the outbound guard refused the target's address
        ├── RetryablePublishError    the post waits and goes out later
        │   ├── RateLimitedError         honour ``retry_after``
        │   └── TransientError           5xx, connection refused before sending: backoff
        │       ├── NotCreatedError          an answer that proves nothing was created,
        │       │                            even on the request that creates the post
        │       └── PreparedStaleError       a prepared artifact is gone (an expired container):
        │                                    the driver prepares anew once, then it is transient
        └── OutcomeUnknownError      the request was sent and no answer came back, or one
                                     that does not prove the post was not created (a 5xx
                                     on the request that creates it): never retried
                                     blindly (may already be published)

Adapters map foreign errors (httpx, platform bodies) into this tree at the boundary with
``raise ... from``; messages are written for the user who reads ``error_message`` and never
contain a token.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(SchedulerError):
    """A setting is missing or malformed; the message names the variable."""


class InvalidPostError(SchedulerError):
    """A row cannot be scheduled or published as written."""


class InvalidScheduleError(InvalidPostError):
    """The date, time or timezone of a row does not give a due instant."""


class NoConnectionError(InvalidPostError):
    """No usable platform connection for the post (none, or ambiguous)."""


class PublishError(SchedulerError):
    """A publish attempt failed. ``retry_after`` is seconds to wait when retryable."""

    retry_after: float | None = None


class PermanentPublishError(PublishError):
    """Retrying will not help: the post returns to draft with this message."""


class AuthError(PermanentPublishError):
    """The stored token is invalid, expired beyond refresh, or revoked."""


class RefreshableAuthError(AuthError):
    """An auth failure a token refresh may cure (expired access token)."""


class ContentRejectedError(PermanentPublishError):
    """The content breaks a platform rule (checked locally or by the platform)."""


class MediaTooLargeError(ContentRejectedError):
    """A media download went past its cap (the platform's limit or the daemon's): nothing
    of it is kept; adapters restate it with the platform's rule."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class PlatformConfigError(PermanentPublishError):
    """A setting or the target (channel, page, API version) is wrong."""


class AddressNotAllowedError(PlatformConfigError):
    """A request would go to an address the outbound guard refuses (see ``net.guard``)."""


class RetryablePublishError(PublishError):
    """Retrying later is safe: the platform certainly did not publish."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetryablePublishError):
    """The platform asked us to slow down; ``retry_after`` says for how long."""


class TransientError(RetryablePublishError):
    """A passing failure (5xx, refused connection) before the post was accepted.

    On the request that creates the post a platform's "temporary" answer proves nothing
    (a gateway answers 502 after the backend committed): there it is read as an
    ``OutcomeUnknownError`` (``platforms._http.on_create``), unless it is a
    ``NotCreatedError``.
    """


class NotCreatedError(TransientError):
    """A passing failure whose answer proves that the platform created nothing (e.g. Slack's
    ``request_timeout``: the request body never arrived whole): safe to retry even on the
    request that creates the post."""


class PreparedStaleError(TransientError):
    """What ``prepare`` made is no longer usable (a container expired, a media id lapsed);
    raised by ``publish`` before it sent anything for the item."""


class OutcomeUnknownError(PublishError):
    """The request left us and no answer came back that says what happened (a timeout, a
    reset, a 5xx to the request that creates the post): it may have been published."""
