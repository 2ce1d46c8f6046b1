"""The deadline of one publish attempt, and whether the attempt may have published yet.

``within_deadline(step, seconds)`` runs one attempt for at most
``SCHEDULER_ATTEMPT_TIMEOUT_SECONDS``. Past it, the attempt is retried if nothing that
may publish has been sent yet (``TransientError``), and reported as an unknown outcome
otherwise (``OutcomeUnknownError``).

A request "may publish" unless it is a GET (or HEAD, OPTIONS) or is sent inside
``publishes_nothing()``: media uploads, containers and token refreshes run there. The
adapters' one sender (``platforms._http.send``) reports each request with ``sending``.
The state lives in context variables, so each attempt (a task) has its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import httpx

from ..errors import OutcomeUnknownError, TransientError

__all__ = ["publishes_nothing", "sending", "within_deadline"]

T = TypeVar("T")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


def sending(request: httpx.Request) -> None:
    """``request`` is about to go out within the current attempt (if any)."""
    attempt = _ATTEMPT.get()
    if attempt is not None and request.method not in _SAFE_METHODS and not _PREPARING.get():
        attempt.may_have_published = True
