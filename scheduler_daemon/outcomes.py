"""Turning a publish attempt's end into an ``Outcome``, and writing outcomes durably.

``classify`` is pure: the retry policy in one place. ``OutcomeWriter`` batches whatever
outcomes and rejections are pending into one round trip each, and retries a failed write
with backoff until it lands, so a database outage never makes the daemon forget that a
post was published (or why it was not).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import uuid
from collections.abc import Callable

import structlog

from .errors import (
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
from .db import DB_ERRORS
from .db.repository import Repository
from .models import Outcome, OutcomeKind, PublishResult
from .timing import backoff, format_delay

logger = structlog.get_logger("scheduler_daemon.outcomes")

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
    jitter: Callable[[float, float], float] = random.uniform,
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
        delay = backoff(attempt, retry_base, retry_max, jitter)
        wait = exc.retry_after
        if wait is not None and not math.isnan(wait):
            delay = max(delay, min(wait, LONGEST_WAIT))
        retry_at = finished_at + dt.timedelta(seconds=delay)
        message = f"attempt {attempt} failed ({exc_text}); retrying in {format_delay(delay)}"
        return end(OutcomeKind.RETRY, message, reason, retry_at)
    if isinstance(exc, OutcomeUnknownError):
        message = (
            f"outcome unknown: {exc_text}. The post may have been published: check {platform} before rescheduling"
        )
        return end(OutcomeKind.UNKNOWN, message, "unknown")
    if isinstance(exc, AuthError):
        text = exc_text
        message = text if f"reconnect {platform}" in text else f"reconnect {platform}: {text}"
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


class OutcomeWriter:
    """Writes outcomes and rejections in batches, retrying until each batch lands."""

    def __init__(self, repository: Repository, *, retry_cap: float = 5.0) -> None:
        self.repository = repository
        self.retry_cap = retry_cap
        self._outcomes: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._rejects: list[tuple[uuid.UUID, int, str]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._deadline = float("inf")
        self.written = 0

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue ``outcome``; the future resolves once it is in the database."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, written))
        self._idle.clear()
        self._wake.set()
        return written

    def reject(self, post_id: uuid.UUID, version: int, message: str) -> None:
        self._rejects.append((post_id, version, message))
        self._idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._outcomes) + len(self._rejects)

    async def drained(self) -> None:
        """Wait until everything submitted so far has been written."""
        await self._idle.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish writing what is pending, then return from ``run``.

        If the database still refuses the writes ``timeout`` seconds from now, the pending
        outcomes are logged one per line at error level (post id, status, platform post id,
        message) so that an operator can apply them by hand, and ``run`` returns.
        """
        self._stopping = True
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()
            if not self.pending:
                self._idle.set()
                if self._stopping:
                    return

    async def _flush(self) -> None:
        failures = 0
        while self.pending:
            outcomes, self._outcomes = self._outcomes, []
            rejects, self._rejects = self._rejects, []
            try:
                if rejects:
                    await self.repository.reject(rejects)
                    rejects = []
                if outcomes:
                    await self.repository.record([o for o, _ in outcomes])
                    self.written += len(outcomes)
                    for _, written in outcomes:
                        if not written.done():
                            written.set_result(None)
                failures = 0
            except DB_ERRORS as exc:
                # Put them back in front and try again: nothing is dropped.
                self._outcomes[:0] = outcomes
                self._rejects[:0] = rejects
                delay = min(self.retry_cap, 0.1 * 2**failures)
                failures += 1
                if self._stopping and asyncio.get_running_loop().time() + delay > self._deadline:
                    self._give_up(exc)
                    return
                logger.warning(
                    "cannot record outcomes; will retry", error=str(exc), pending=self.pending,
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    def _give_up(self, exc: BaseException) -> None:
        for outcome, _ in self._outcomes:
            logger.error(
                "outcome not recorded: the database refused it until shutdown", error=str(exc),
                post_id=str(outcome.post_id), platform=outcome.platform, status=str(outcome.status),
                platform_post_id=outcome.result.platform_post_id if outcome.result else None,
                error_message=outcome.error_message,
            )
        for post_id, _, message in self._rejects:
            logger.error("rejection not recorded", post_id=str(post_id), error_message=message)
        self._outcomes, self._rejects = [], []
