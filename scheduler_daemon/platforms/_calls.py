"""Answers and steps, as every adapter reads and takes them (requests: ``_http``).

* ``json_object``, ``text_field``, ``require_id`` read answers defensively: a platform's
  body is untrusted input.
* ``poll``, ``preparing``, ``best_effort`` wrap steps: a bounded wait for processing, a
  step that publishes nothing (its lost answer is retryable), a lookup after success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from ..errors import OutcomeUnknownError, PublishError, RateLimitedError, TransientError
from ..models import MediaItem
from ..net.deadline import publishes_nothing
from ._http import retry_after
from .base import DISPLAY


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, or ``{}``."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def text_field(data: Mapping[str, Any], *path: str) -> str | None:
    """``data[path[0]][path[1]]…`` as a string (numbers too), or None."""
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, (str, int)) else None


def require_id(data: Mapping[str, Any], *path: str, what: str) -> str:
    """An id the success body must hold; its absence means we cannot tell what happened."""
    value = text_field(data, *path)
    if not value:
        raise OutcomeUnknownError(f"{what}: the answer had no {'.'.join(path)}; check the platform")
    return value


def seconds_until_epoch(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(0.0, float(raw.strip()) - time.time())
    except ValueError:
        return None


def rate_limited(platform: str, response: httpx.Response, seconds: float | None, detail: str = "") -> RateLimitedError:
    wait = seconds if seconds is not None else retry_after(response)
    extra = f": {detail}" if detail else ""
    return RateLimitedError(f"{DISPLAY.get(platform, platform)} rate limit reached{extra}", wait)


async def poll(
    check: Callable[[], Awaitable[bool]], *, interval: float, timeout: float, what: str
) -> None:
    """Call ``check`` until it returns True, at most ``timeout`` seconds apart by ``interval``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise TransientError(f"{what}: still processing after {timeout:g} s; will try again")
        await asyncio.sleep(interval)


async def best_effort(step: Awaitable[str | None]) -> str | None:
    """A lookup after the post exists (e.g. its permalink): a failure must not undo success."""
    try:
        return await step
    except PublishError:
        return None


def filename(item: MediaItem, mime: str, index: int) -> str:
    source = item.storage_path or item.url or ""
    name = source.rsplit("/", 1)[-1].split("?", 1)[0]
    if name and "." in name and len(name) <= 100:
        return name
    extension = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}.get(mime, "bin")
    return f"image{index}.{extension}"


T = TypeVar("T")


async def preparing(step: Awaitable[T]) -> T:
    """Run a step that publishes nothing (an upload, a container): a lost answer is retryable,
    and so is an attempt whose deadline passes before anything else was sent."""
    try:
        with publishes_nothing():
            return await step
    except OutcomeUnknownError as exc:
        raise TransientError(f"{exc} (while preparing; nothing was published)") from exc
