"""The token of one publish attempt: refreshed through the daemon at most once.

``TokenHolder`` keeps the connection of one attempt and refreshes its token through
``PublishContext.refresh_tokens`` (row lock, stored atomically) at most once: before the
call when it expires within a margin, or after the first auth failure the platform marks
as curable by a refresh (``RefreshableAuthError``). ``oauth_token_set`` and
``refresh_grant`` are the OAuth 2.0 halves the refreshers share.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..config.platforms import ClientCredentials
from ..errors import AuthError, PlatformConfigError
from ..models import Connection, Refresher, TokenSet
from ._calls import text_field
from .base import DISPLAY, PublishContext


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
