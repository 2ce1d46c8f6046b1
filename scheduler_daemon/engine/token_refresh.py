"""Token refresh off the database pool: no connection or row lock is held across the
platform's HTTP call, which a tenant's server (a Bluesky PDS) may make as slow as it likes.

``TokenRefresh.refresh(connection, refresher)``, per platform connection::

    wait for the connection's in-process lock (one refresh at a time per connection)
      → read the row (one statement: no transaction, no lock)
          token differs from the caller's → someone refreshed: return the row
      → call the platform within ``deadline``, holding nothing of the pool
          refused (AuthError) and the row changed meanwhile → return the row
      → store by compare-and-swap on the token the refresh started from
          swapped → return the stored row
          the row changed meanwhile (another daemon, a reconnect) → return the winner's row

So concurrent publishes on one connection refresh once in this process (the others find
the new token once they get the lock), and across daemons the loser of a race takes the
winner's tokens instead of overwriting them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Protocol

from ..errors import AuthError, OutcomeUnknownError, TransientError
from ..models import Connection, Refresher, TokenSet
from ..net.deadline import publishes_nothing

__all__ = ["TokenRefresh", "TokenStore"]


class TokenStore(Protocol):
    async def connection(self, connection_id: uuid.UUID) -> Connection | None: ...

    async def swap_tokens(self, old: Connection, tokens: TokenSet) -> Connection | None:
        """Store ``tokens`` if the row still holds ``old``'s access token; None if not."""
        ...


class _Waiters:
    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.count = 0


class TokenRefresh:
    def __init__(self, store: TokenStore, deadline: float) -> None:
        self.store = store
        self.deadline = deadline  # seconds for the platform's refresh call
        self._waiters: dict[uuid.UUID, _Waiters] = {}

    async def refresh(self, connection: Connection, refresher: Refresher) -> Connection:
        """The connection with fresh tokens; the platform is called only if the row still
        holds the token ``connection`` holds."""
        waiters = self._waiters.setdefault(connection.id, _Waiters())
        waiters.count += 1
        try:
            async with waiters.lock:
                return await self._refresh(connection, refresher)
        finally:
            waiters.count -= 1
            if not waiters.count:  # forget idle connections so the map stays small
                del self._waiters[connection.id]

    async def _refresh(self, connection: Connection, refresher: Refresher) -> Connection:
        current = await self.store.connection(connection.id)
        if current is None:
            return connection  # the row is gone; the call that follows reports it
        if current.access_token != connection.access_token:
            return current  # refreshed meanwhile (a publish here, another daemon, a reconnect)
        try:
            tokens = await self._call(refresher, current)
        except AuthError:
            latest = await self.store.connection(connection.id)
            if latest is not None and latest.access_token != current.access_token:
                return latest  # a winner rotated the refresh token we used
            raise
        stored = await self.store.swap_tokens(current, tokens)
        if stored is not None:
            return stored
        return await self.store.connection(connection.id) or current

    async def _call(self, refresher: Refresher, current: Connection) -> TokenSet:
        scope = asyncio.timeout(self.deadline)
        try:
            with publishes_nothing():
                async with scope:
                    return await refresher(current)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise TransientError(
                f"the token refresh got no answer within {self.deadline:g} s; nothing was published, will try again"
            ) from exc
        except OutcomeUnknownError as exc:  # a refresh publishes nothing
            raise TransientError(f"{exc} (during the token refresh: nothing was published)") from exc
