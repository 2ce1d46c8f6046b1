"""Concurrency limits per platform and per account, applied across posts due together.

The daemon wraps each publish in ``async with pacer.slot(platform, account_key):``. A
slot takes the account's semaphore first, then the platform's, so a post waiting for a
busy account never holds a platform-wide slot. Semaphores are created lazily on first
use; limits come from ``PlatformSettings.limits`` (``SCHEDULER_<P>_CONCURRENCY`` and
``SCHEDULER_<P>_ACCOUNT_CONCURRENCY``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .settings import UNLIMITED, PlatformSettings


class Pacer:
    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self._platforms: dict[str, asyncio.Semaphore] = {}
        self._accounts: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._users: dict[tuple[str, str], int] = {}

    @asynccontextmanager
    async def slot(self, platform: str, account_key: str) -> AsyncIterator[None]:
        if min(self.settings.limits(platform)) >= UNLIMITED:
            yield  # only SCHEDULER_CONCURRENCY applies: no semaphores to take
            return
        key = (platform, account_key)
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with self._account(platform, account_key), self._platform(platform):
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # forget idle accounts so the map stays small
                del self._users[key]
                self._accounts.pop(key, None)

    def _platform(self, platform: str) -> asyncio.Semaphore:
        semaphore = self._platforms.get(platform)
        if semaphore is None:
            semaphore = self._platforms[platform] = asyncio.Semaphore(self.settings.limits(platform)[0])
        return semaphore

    def _account(self, platform: str, account_key: str) -> asyncio.Semaphore:
        key = (platform, account_key)
        semaphore = self._accounts.get(key)
        if semaphore is None:
            semaphore = self._accounts[key] = asyncio.Semaphore(self.settings.limits(platform)[1])
        return semaphore
