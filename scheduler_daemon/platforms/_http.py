"""One request, as every adapter sends it: httpx errors mapped into our tree.

* ``send`` sends one request (and tells the attempt's deadline, ``net.deadline``, that it
  went out) straight through the client's transport (``transport.handle_async_request``):
  the daemon's client has no auth, cookies, hooks or redirects to follow, and httpx's
  layers above the transport cost more CPU than the transport's own work in a burst. The
  limits are the transport's (deadline, answer cap, outbound guard), so nothing changes.
  A client with auth or event hooks (none of the daemon's) goes through ``client.send``.
  Whether a failed request may be retried depends on whether it left the
  machine:

  - the outbound guard refused the address → ``AddressNotAllowedError`` (a draft:
    retrying cannot help, and nothing was sent);
  - connect errors, connect and pool timeouts: the platform never saw the request →
    ``TransientError`` (safe to retry);
  - anything after the request was written (the deadline, a reset, a protocol error, an
    answer over its size cap) → ``OutcomeUnknownError``: the post may exist, so it is
    never retried blindly.
* ``call`` sends the request an adapter builds and lets the adapter's error mapping (its
  ``classify``) decide; a refreshable auth failure refreshes the token once
  (``_tokens.TokenHolder``) and re-sends the same request.
* ``call(..., creates=True)`` marks the request that creates the post (not an upload, a
  container, a status poll or a token refresh). There ``on_create`` reads the answer:
  a gateway may answer 5xx after the backend committed the write, so a ``TransientError``
  (any 5xx, a platform's "temporary" error) is an ``OutcomeUnknownError``, unless the
  adapter's ``classify`` proves that nothing was created (``NotCreatedError``, e.g.
  Slack's ``request_timeout``). A rate limit (the limiter refused the request) and the
  permanent errors stand. With ``send``'s mapping this gives the create call three
  outcomes: created, certainly not created (retryable or permanent), unknown.
* ``retry_after`` and ``raise_for_generic_status`` read what every API signals alike.
* ``Ready``: a request an adapter built before the instant (``delivery.build_ahead``) and
  what it was built from, so the adapter sends it only while that still holds.

Text from the other end (answers, their error fields) reaches a message only through
``excerpt``: printable characters, whitespace collapsed, a few hundred characters at
most; never a header.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from ..errors import (
    AddressNotAllowedError,
    NotCreatedError,
    OutcomeUnknownError,
    PublishError,
    RateLimitedError,
    RefreshableAuthError,
    TransientError,
)
from ..net.deadline import sending
from ..net.transport import ResponseTooLarge

if TYPE_CHECKING:
    from ._tokens import TokenHolder

Classifier = Callable[[httpx.Response], PublishError | None]

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Ready:
    """A request built before the instant, and what it was built from (a token, a container):
    sent only while the adapter still has the same (else built anew)."""

    request: httpx.Request
    made_for: tuple[object, ...] = ()


async def send(client: httpx.AsyncClient, request: httpx.Request, *, what: str) -> httpx.Response:
    """Send ``request``; map transport failures by whether the request was sent."""
    sending(request)
    try:
        return await _send(client, request)
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


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """``client.send(request)`` without httpx's auth, redirect and cookie layers when the
    client has none of them to apply: the transport's answer, its body read (as ``send``)."""
    if client.auth is not None or any(client.event_hooks.values()) or client.follow_redirects:
        return await client.send(request)
    transport = client._transport_for_url(request.url)  # httpx's own pick (mounts): private, stable since 0.18
    response = await transport.handle_async_request(request)
    response.request = request  # as httpx does (a MockTransport's answer has none)
    try:
        await response.aread()
    except BaseException:
        await response.aclose()
        raise
    return response


async def call(
    client: httpx.AsyncClient,
    holder: TokenHolder | None,
    build: Callable[[], httpx.Request],
    classify: Classifier,
    *,
    what: str,
    creates: bool = False,
) -> httpx.Response:
    """Send the request ``build`` makes; on a refreshable auth failure refresh once and resend.
    ``creates``: this request creates the post, so its failures are read by ``on_create``."""
    while True:
        response = await send(client, build(), what=what)
        error = classify(response)
        if error is None:
            return response
        if isinstance(error, RefreshableAuthError) and holder is not None and await holder.refresh():
            continue
        raise on_create(error) if creates else error


def on_create(error: PublishError) -> PublishError:
    """What a failed answer to the request that creates the post means: a passing failure
    that does not prove nothing was created is an unknown outcome, never retried blindly."""
    if isinstance(error, TransientError) and not isinstance(error, NotCreatedError):
        return OutcomeUnknownError(f"{error}, in answer to the request that creates the post")
    return error


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


def raise_for_generic_status(response: httpx.Response, *, what: str, creates: bool = False) -> None:
    """Rate limit and server errors every API signals the same way (``creates``: as ``call``)."""
    error: PublishError | None = None
    if response.status_code == 429:
        error = RateLimitedError(f"{what}: rate limited (HTTP 429)", retry_after(response))
    elif response.status_code >= 500:
        error = TransientError(f"{what}: server error (HTTP {response.status_code})", retry_after(response))
    if error is not None:
        raise on_create(error) if creates else error


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as a short, printable excerpt for a message: control, format and other
    unprintable characters become spaces, whitespace runs one space, ``limit`` characters."""
    raw = str(value)
    text = " ".join("".join(c if c.isprintable() else " " for c in raw[: limit * 2]).split())
    return text[:limit] + ("…" if len(text) > limit or len(raw) > limit * 2 else "")


def body_excerpt(response: httpx.Response, limit: int = EXCERPT_CHARS) -> str:
    """The start of a response body for an error message (never a header)."""
    return excerpt(response.content[: limit * 4].decode("utf-8", errors="replace"), limit)
