"""The end of a publish attempt as an ``Outcome``: the retry policy in one place. Pure.

``classify`` maps the exception an attempt raised (the tree in ``errors``) to what
happens to the post: a retry at ``retry_at`` (backoff with full jitter, the platform's
own wait as a floor), a draft with a message for the user, or "outcome unknown".
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid

from ..clock import format_delay
from ..errors import (
    AuthError,
    ContentRejectedError,
    InvalidPostError,
    OutcomeUnknownError,
    PlatformConfigError,
    PublishError,
    RateLimitedError,
    RetryablePublishError,
    TransientError,
)
from ..models import Outcome, OutcomeKind, PublishResult
from ..retry import Jitter, delay

RATE_LIMIT_ATTEMPTS_FACTOR = 10  # rate limits are the platform pacing us, not failures
LONGEST_WAIT = 7 * 86400.0  # a platform asking for more (or for infinity) is taken at this word
_EMPTY_MESSAGES: dict[type[BaseException], str] = {
    AuthError: "the platform rejected the token",
    ContentRejectedError: "the platform rejected the content",
    PlatformConfigError: "the platform rejected the configuration",
}


def classify(
    exc: BaseException,
    *,
    post_id: uuid.UUID,
    platform: str,
    attempt: int,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    max_attempts: int,
    retry_base: float,
    retry_max: float,
    idempotent: bool = False,
    jitter: Jitter = random.uniform,
) -> Outcome:
    """The outcome of an attempt that raised ``exc``.

    ``idempotent``: the platform deduplicates a repeated request for this post (an
    idempotency key, a fixed record key, a status check), so an unknown outcome can be
    retried safely; elsewhere it ends as a draft telling the user to check.
    """

    exc_text = str(exc) or _EMPTY_MESSAGES.get(type(exc), type(exc).__name__)

    def end(kind: OutcomeKind, message: str, reason: str, retry_at: dt.datetime | None = None) -> Outcome:
        return Outcome(post_id, platform, attempt, kind, started_at, finished_at, None, message, retry_at, reason)

    if isinstance(exc, OutcomeUnknownError) and idempotent:
        exc = TransientError(f"{exc} (safe to repeat: {platform} deduplicates this post)")
    if isinstance(exc, RetryablePublishError):
        limited = isinstance(exc, RateLimitedError)
        limit = max_attempts * (RATE_LIMIT_ATTEMPTS_FACTOR if limited else 1)
        reason = "rate_limited" if limited else "transient"
        if attempt >= limit:
            return end(OutcomeKind.FAILED, f"gave up after {attempt} attempts: {exc_text}", reason)
        # A platform's own wait is a floor under the backoff.
        seconds = delay(attempt, retry_base, retry_max, jitter)
        wait = exc.retry_after
        if wait is not None and not math.isnan(wait):
            seconds = max(seconds, min(wait, LONGEST_WAIT))
        retry_at = finished_at + dt.timedelta(seconds=seconds)
        message = f"attempt {attempt} failed ({exc_text}); retrying in {format_delay(seconds)}"
        return end(OutcomeKind.RETRY, message, reason, retry_at)
    if isinstance(exc, OutcomeUnknownError):
        message = (
            f"outcome unknown: {exc_text}. The post may have been published: check {platform} before rescheduling"
        )
        return end(OutcomeKind.UNKNOWN, message, "unknown")
    if isinstance(exc, AuthError):
        # One form for every platform (platforms._tokens.reconnect): said once, then the reason.
        text = exc_text
        message = text if text.startswith(f"reconnect {platform}") else f"reconnect {platform}: {text}"
        return end(OutcomeKind.FAILED, message, "auth")
    if isinstance(exc, ContentRejectedError):
        return end(OutcomeKind.FAILED, exc_text, "content")
    if isinstance(exc, PlatformConfigError):
        return end(OutcomeKind.FAILED, exc_text, "config")
    if isinstance(exc, InvalidPostError):
        return end(OutcomeKind.FAILED, exc_text, "invalid")
    if isinstance(exc, PublishError):
        return end(OutcomeKind.FAILED, exc_text, "failed")
    # A bug of ours, raised who knows where in the adapter: the request may have gone out.
    message = (
        f"internal error ({type(exc).__name__}); the post may have been published: "
        f"check {platform} before rescheduling"
    )
    return end(OutcomeKind.UNKNOWN, message, "internal")


def published(
    result: PublishResult, *, post_id: uuid.UUID, platform: str, attempt: int,
    started_at: dt.datetime, finished_at: dt.datetime,
) -> Outcome:
    return Outcome(post_id, platform, attempt, OutcomeKind.PUBLISHED, started_at, finished_at, result)
