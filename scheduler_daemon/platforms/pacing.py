"""Concurrency limits per platform and per account, applied across posts due together.

The publisher wraps each publish in ``async with pacer.slot(platform, account_key):``
BEFORE it takes a global slot (``SCHEDULER_CONCURRENCY``), and a slot takes the account's
semaphore first, then the platform's: a post waiting for a busy account holds neither a
platform-wide nor a global slot, so one tenant's backlog waits on its own account while
other tenants' posts go out. Semaphores are created lazily on first
use; limits are each adapter's declared ``concurrency``, or the
``SCHEDULER_<P>_CONCURRENCY`` and ``SCHEDULER_<P>_ACCOUNT_CONCURRENCY`` overrides.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..config.platforms import PlatformSettings
from .base import UNLIMITED
from .registry import concurrency


class Pacer:
    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self._platforms: dict[str, asyncio.Semaphore] = {}
        self._accounts: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._users: dict[tuple[str, str], int] = {}

    @property
    def accounts_tracked(self) -> int:
        """Accounts with a semaphore right now: those with a publish waiting or in flight."""
        return len(self._accounts)

    @asynccontextmanager
    async def slot(self, platform: str, account_key: str) -> AsyncIterator[None]:
        limits = concurrency(self.settings, platform)
        if min(limits) >= UNLIMITED:
            yield  # only SCHEDULER_CONCURRENCY applies: no semaphores to take
            return
        key = (platform, account_key)
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with self._account(key, limits[1]), self._platform(platform, limits[0]):
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # forget idle accounts so the map stays small
                del self._users[key]
                self._accounts.pop(key, None)

    def _platform(self, platform: str, limit: int) -> asyncio.Semaphore:
        semaphore = self._platforms.get(platform)
        if semaphore is None:
            semaphore = self._platforms[platform] = asyncio.Semaphore(limit)
        return semaphore

    def _account(self, key: tuple[str, str], limit: int) -> asyncio.Semaphore:
        semaphore = self._accounts.get(key)
        if semaphore is None:
            semaphore = self._accounts[key] = asyncio.Semaphore(limit)
        return semaphore
