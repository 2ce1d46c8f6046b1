"""The token of one publish attempt: refreshed through the daemon at most once.

``TokenHolder`` keeps the connection of one attempt and refreshes its token through
``PublishContext.refresh_tokens`` (once per connection, stored by compare-and-swap:
``engine.token_refresh``) at most once: before the call when it expires within a margin, or
after the first auth failure the platform marks as curable by a refresh
(``RefreshableAuthError``). ``refresh_grant``, ``refreshed_tokens`` and
``oauth_token_set`` are the OAuth 2.0 parts the refreshers share.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ..config.platforms import ClientCredentials
from ..errors import AuthError, PlatformConfigError, RefreshableAuthError
from ..models import Connection, Refresher, TokenSet
from ._calls import json_object, text_field
from .base import DISPLAY, PublishContext


def reconnect(platform: str, detail: str, *, refreshable: bool = False) -> AuthError:
    """The one auth message of a failure: what to do, then the platform's own reason.
    ``refreshable``: a refresh may cure it (raised as such only while one is possible)."""
    kind = RefreshableAuthError if refreshable else AuthError
    return kind(f"reconnect {platform}: {DISPLAY.get(platform, platform)} refused the credentials: {detail}")


def oauth_reason(response: httpx.Response) -> str:
    """The reason an OAuth token endpoint gives (``error_description``, ``error``, ``message``)."""
    data = json_object(response)
    reason = data.get("error_description") or data.get("error") or data.get("message")
    return str(reason)[:200] if reason else f"HTTP {response.status_code}"


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

    @classmethod
    async def fresh(
        cls, platform: str, connection: Connection, ctx: PublishContext, refresher: Refresher | None, margin: float
    ) -> TokenHolder:
        """A holder whose token does not expire within ``margin`` seconds (refreshed if it did)."""
        holder = cls(platform, connection, ctx, refresher)
        await holder.ensure_fresh(margin)
        return holder

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


def oauth_token_set(data: Mapping[str, Any], *, platform: str) -> TokenSet:
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


def refreshed_tokens(
    response: httpx.Response, *, platform: str, classify: Callable[[httpx.Response], Exception | None]
) -> TokenSet:
    """The answer of a standard OAuth 2.0 token refresh: a 400/401 means the refresh token
    was refused (reconnect, with the server's reason); the platform's other errors
    (``classify``: a 429, a 5xx) are raised as they are; else the new tokens."""
    if response.status_code in (400, 401):
        raise reconnect(platform, f"the refresh token was refused ({oauth_reason(response)})")
    error = classify(response)
    if error is not None:
        raise error
    return oauth_token_set(json_object(response), platform=platform)


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
