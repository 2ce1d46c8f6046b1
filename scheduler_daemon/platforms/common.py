"""Helpers shared by the platform adapters: tokens, JSON bodies, bounded polls, media rules.

* ``TokenHolder`` keeps the connection of one publish attempt and refreshes its token
  through ``PublishContext.refresh_tokens`` (once per connection, stored by
  compare-and-swap: ``token_refresh``) at most once:
  before the call when it expires within a margin, or after the first auth failure the
  platform marks as curable by a refresh (``RefreshableAuthError``).
* ``call`` sends one request through ``http.send`` and lets the adapter's error mapping
  decide; a refreshable auth failure refreshes once and re-sends the same request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from ..errors import (
    AuthError,
    ContentRejectedError,
    OutcomeUnknownError,
    PlatformConfigError,
    PublishError,
    RateLimitedError,
    TransientError,
)
from ..models import Connection, MediaItem, Post
from .base import PublishContext, Refresher, TokenSet
from .http import publishes_nothing, retry_after, send
from .settings import ClientCredentials

DISPLAY = {
    "facebook": "Facebook",
    "instagram": "Instagram",
    "linkedin": "LinkedIn",
    "x": "X",
    "threads": "Threads",
    "bluesky": "Bluesky",
    "mastodon": "Mastodon",
    "telegram": "Telegram",
    "discord": "Discord",
    "slack": "Slack",
}


class RefreshableAuthError(AuthError):
    """An auth failure a token refresh may cure (expired access token)."""


def reconnect(platform: str, detail: str) -> AuthError:
    return AuthError(f"{DISPLAY.get(platform, platform)} refused the credentials ({detail}): reconnect {platform}")


def expires_within(connection: Connection, margin: float, now: dt.datetime | None = None) -> bool:
    if connection.token_expires_at is None:
        return False
    now = now or dt.datetime.now(dt.timezone.utc)
    expires = connection.token_expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.timezone.utc)
    return (expires - now).total_seconds() <= margin


class TokenHolder:
    """The connection of one attempt; refreshes through the daemon at most once."""

    def __init__(
        self, platform: str, connection: Connection, ctx: PublishContext, refresher: Refresher | None
    ) -> None:
        self.platform = platform
        self.connection = connection
        self.ctx = ctx
        self.refresher = refresher
        self.refreshed = False

    async def ensure_fresh(self, margin: float) -> None:
        if self.refresher is not None and expires_within(self.connection, margin):
            await self.refresh()

    async def refresh(self) -> bool:
        if self.refresher is None or self.refreshed:
            return False
        self.connection = await self.ctx.refresh_tokens(self.connection, self.refresher)
        self.refreshed = True
        return True

    @property
    def token(self) -> str:
        token = self.connection.access_token
        if not token:
            raise reconnect(self.platform, "the connection has no access token")
        return token


Classifier = Callable[[httpx.Response], PublishError | None]


async def call(
    client: httpx.AsyncClient,
    holder: TokenHolder | None,
    build: Callable[[], httpx.Request],
    classify: Classifier,
    *,
    what: str,
) -> httpx.Response:
    """Send the request ``build`` makes; on a refreshable auth failure refresh once and resend."""
    while True:
        response = await send(client, build(), what=what)
        error = classify(response)
        if error is None:
            return response
        if isinstance(error, RefreshableAuthError) and holder is not None and await holder.refresh():
            continue
        raise error


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


def oauth_token_set(data: Mapping[str, Any], *, platform: str, keep_refresh: bool = False) -> TokenSet:
    """A ``TokenSet`` from an OAuth token answer (``access_token``, ``expires_in``, ``refresh_token``)."""
    access = text_field(data, "access_token")
    if not access:
        raise reconnect(platform, "the token refresh answered without an access token")
    expires_in = data.get("expires_in")
    expires_at = None
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        expires_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=float(expires_in))
    refresh = text_field(data, "refresh_token")
    return TokenSet(access_token=access, refresh_token=refresh, expires_at=expires_at)


def refresh_grant(credentials: ClientCredentials, connection: Connection, *, needs: str) -> dict[str, str]:
    """The OAuth 2.0 ``refresh_token`` grant for a confidential client; ``needs`` names
    the settings in the error when the app credentials are missing."""
    if not credentials.client_id or not credentials.client_secret:
        raise PlatformConfigError(needs)
    return {
        "grant_type": "refresh_token",
        "refresh_token": connection.refresh_token or "",
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
    }


def client_id(settings_client_id: str | None, platform: str) -> str:
    if not settings_client_id:
        raise PlatformConfigError(
            f"{DISPLAY.get(platform, platform)} token refresh needs SCHEDULER_{platform.upper()}_CLIENT_ID"
        )
    return settings_client_id


async def poll(
    check: Callable[[], Awaitable[bool]], *, interval: float, timeout: float, what: str
) -> None:
    """Call ``check`` until it returns True, at most ``timeout`` seconds apart by ``interval``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise TransientError(f"{what}: still processing after {timeout:g} s; will try again")
        await asyncio.sleep(interval)


def check_media(
    platform: str,
    post: Post,
    *,
    max_items: int,
    min_items: int = 0,
    images_only: bool = True,
) -> None:
    name = DISPLAY.get(platform, platform)
    count = len(post.media)
    if count > max_items:
        raise ContentRejectedError(f"{name} takes at most {max_items} image{'s' if max_items != 1 else ''} per post; this one has {count}")
    if count < min_items:
        raise ContentRejectedError(f"{name} needs at least {min_items} image{'s' if min_items != 1 else ''} per post")
    for item in post.media:
        if not item.url and not item.storage_path:
            raise ContentRejectedError(f"{name}: a media item has neither url nor storage_path")
        if images_only and item.mime and not item.mime.startswith("image/"):
            raise ContentRejectedError(f"{name}: only images are supported here, not {item.mime[:50]}")


def check_length(platform: str, count: int, limit: int, unit: str = "characters") -> None:
    if count > limit:
        raise ContentRejectedError(
            f"{DISPLAY.get(platform, platform)} allows {limit} {unit}; this post has {count}"
        )


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
