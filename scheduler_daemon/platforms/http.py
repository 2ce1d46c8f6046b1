"""The HTTP boundary shared by adapters: httpx errors mapped into our tree.

Whether a failed request may be retried depends on whether it left the machine:

* the outbound guard refused the address → ``AddressNotAllowedError`` (a draft: retrying
  cannot help, and nothing was sent);
* connect errors, connect and pool timeouts: the platform never saw the request →
  ``TransientError`` (safe to retry);
* anything after the request was written (the deadline, a reset, a protocol error, an
  answer over its size cap) → ``OutcomeUnknownError``: the post may exist, so it is never
  retried blindly.

``within_deadline`` bounds a whole publish attempt. Past the deadline the attempt is
retried if nothing that may publish has been sent yet, and reported as an unknown outcome
otherwise. A request "may publish" unless it is a GET (or HEAD, OPTIONS) or is sent
inside ``publishes_nothing()`` (media uploads, containers and token refreshes run there).

Text from the other end (answers, their error fields) reaches a message only through
``excerpt``: printable characters, whitespace collapsed, a few hundred characters at
most; never a header.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import httpx

from ..errors import AddressNotAllowedError, OutcomeUnknownError, RateLimitedError, TransientError
from ..transport import ResponseTooLarge

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXCERPT_CHARS = 200

T = TypeVar("T")


class _Attempt:
    __slots__ = ("may_have_published",)

    def __init__(self) -> None:
        self.may_have_published = False


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("scheduler_daemon_attempt", default=None)
_PREPARING: ContextVar[bool] = ContextVar("scheduler_daemon_preparing", default=False)


@contextmanager
def publishes_nothing() -> Iterator[None]:
    """Requests sent inside cannot publish the post (an upload, a container, a refresh)."""
    token = _PREPARING.set(True)
    try:
        yield
    finally:
        _PREPARING.reset(token)


async def within_deadline(step: Awaitable[T], seconds: float) -> T:
    """Run one publish attempt for at most ``seconds`` (``SCHEDULER_ATTEMPT_TIMEOUT_SECONDS``)."""
    attempt = _Attempt()
    token = _ATTEMPT.set(attempt)
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await step
    except TimeoutError as exc:
        if not scope.expired():
            raise
        spent = f"the attempt took longer than SCHEDULER_ATTEMPT_TIMEOUT_SECONDS ({seconds:g} s)"
        if attempt.may_have_published:
            raise OutcomeUnknownError(f"{spent} after a request that may have published the post") from exc
        raise TransientError(f"{spent} before anything was published; will try again") from exc
    finally:
        _ATTEMPT.reset(token)


async def send(client: httpx.AsyncClient, request: httpx.Request, *, what: str) -> httpx.Response:
    """Send ``request``; map transport failures by whether the request was sent."""
    attempt = _ATTEMPT.get()
    if attempt is not None and request.method not in _SAFE_METHODS and not _PREPARING.get():
        attempt.may_have_published = True
    try:
        return await client.send(request)
    except AddressNotAllowedError as exc:
        raise AddressNotAllowedError(f"{what}: {exc}") from None
    except ResponseTooLarge as exc:
        raise OutcomeUnknownError(f"{what}: {exc}, more than the daemon reads") from exc
    except _NOT_SENT as exc:
        raise TransientError(f"{what}: could not connect ({type(exc).__name__})") from exc
    except httpx.TimeoutException as exc:
        raise OutcomeUnknownError(f"{what}: no answer before the timeout") from exc
    except httpx.TransportError as exc:
        raise OutcomeUnknownError(f"{what}: connection lost after sending ({type(exc).__name__})") from exc


def retry_after(response: httpx.Response, default: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return default
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - time.time())


def raise_for_generic_status(response: httpx.Response, *, what: str) -> None:
    """Rate limit and server errors every API signals the same way."""
    if response.status_code == 429:
        raise RateLimitedError(f"{what}: rate limited (HTTP 429)", retry_after(response))
    if response.status_code >= 500:
        raise TransientError(f"{what}: server error (HTTP {response.status_code})", retry_after(response))


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as a short, printable excerpt for a message: control, format and other
    unprintable characters become spaces, whitespace runs one space, ``limit`` characters."""
    raw = str(value)
    text = " ".join("".join(c if c.isprintable() else " " for c in raw[: limit * 2]).split())
    return text[:limit] + ("…" if len(text) > limit or len(raw) > limit * 2 else "")


def body_excerpt(response: httpx.Response, limit: int = EXCERPT_CHARS) -> str:
    """The start of a response body for an error message (never a header)."""
    return excerpt(response.content[: limit * 4].decode("utf-8", errors="replace"), limit)
