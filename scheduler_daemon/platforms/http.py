"""The HTTP boundary shared by adapters: httpx errors mapped into our tree.

Whether a failed request may be retried depends on whether it left the machine:

* connect errors, connect and pool timeouts: the platform never saw the request →
  ``TransientError`` (safe to retry);
* anything after the request was written (read timeout, reset, protocol error) →
  ``OutcomeUnknownError``: the post may exist, so it is never retried blindly.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time

import httpx

from ..errors import OutcomeUnknownError, RateLimitedError, TransientError

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


async def send(client: httpx.AsyncClient, request: httpx.Request, *, what: str) -> httpx.Response:
    """Send ``request``; map transport failures by whether the request was sent."""
    try:
        return await client.send(request)
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


def body_excerpt(response: httpx.Response, limit: int = 300) -> str:
    """The start of a response body for an error message (never the request's secrets)."""
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")
