"""An in-memory ``PublishContext``: the daemon's side, faked for adapter contract tests.

* ``refresh_tokens`` locks per connection (an ``asyncio.Lock``, as ``TokenRefresh``
  does); if the stored token already differs from the one the caller holds, another
  publish refreshed it: the stored row is returned and the refresher is not called.
* ``checkpoint`` merges into ``state``; ``next_attempt`` builds the post the next attempt
  sees (``publish_state`` = the merged checkpoints).
* ``media_bytes`` serves ``payloads`` (URL → bytes; ``IMAGE`` for any other URL) with
  the item's MIME type, else the one in ``types`` (as a server's Content-Type), else
  ``image/png``; ``fetched`` lists the URLs asked for. ``media_file`` serves the same
  bytes through the daemon's real spool (``mediafile.Spool``, in ``spool_dir``), probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from scheduler_daemon.errors import MediaTooLargeError
from scheduler_daemon.mediafile import MediaFile, MediaTooLarge, Spool
from scheduler_daemon.models import Connection, MediaItem, Post, Refresher

IMAGE = b"\x89PNG\r\n\x1a\n fake image bytes for the tests"
IMAGE_URL = "https://cdn.test/pics/cat.png"


class Store:
    """The platform_connections rows."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Connection] = {}
        self.locks: dict[uuid.UUID, asyncio.Lock] = {}
        self.refresher_calls = 0

    def add(self, connection: Connection) -> Connection:
        self.rows[connection.id] = connection
        return connection


class FakeContext:
    def __init__(self, store: Store, state: dict[str, Any] | None = None) -> None:
        self.store = store
        self.state: dict[str, Any] = dict(state or {})
        self.checkpoints: list[dict[str, Any]] = []
        self.payloads: dict[str, bytes] = {}  # media URL → its bytes (IMAGE otherwise)
        self.types: dict[str, str] = {}  # media URL → the Content-Type it is served with
        self.fetched: list[str] = []
        self.spool_dir = Path(tempfile.gettempdir()) / "scheduler-daemon-test-spool"

    async def checkpoint(self, **values: Any) -> None:
        self.checkpoints.append(values)
        self.state.update(values)

    async def refresh_tokens(self, connection: Connection, refresher: Refresher) -> Connection:
        lock = self.store.locks.setdefault(connection.id, asyncio.Lock())
        async with lock:
            stored = self.store.rows[connection.id]
            if stored.access_token != connection.access_token:
                return stored
            self.store.refresher_calls += 1
            tokens = await refresher(stored)
            fresh = dataclasses.replace(
                stored,
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token if tokens.refresh_token is not None else stored.refresh_token,
                token_expires_at=tokens.expires_at if tokens.expires_at is not None else stored.token_expires_at,
                metadata=tokens.metadata if tokens.metadata is not None else stored.metadata,
            )
            self.store.rows[connection.id] = fresh
            return fresh

    async def media_url(self, item: MediaItem) -> str:
        assert item.url, "tests use url media"
        return item.url

    async def media_bytes(self, item: MediaItem, max_bytes: int) -> tuple[bytes, str]:
        self.fetched.append(item.url or "")
        content = self.payloads.get(item.url or "", IMAGE)
        if len(content) > max_bytes:
            raise MediaTooLargeError(f"media is larger than {max_bytes} bytes", max_bytes)
        return content, item.mime or self.types.get(item.url or "", "image/png")

    @contextlib.asynccontextmanager
    async def media_file(self, item: MediaItem, max_bytes: int) -> AsyncIterator[MediaFile]:
        self.fetched.append(item.url or "")
        content = self.payloads.get(item.url or "", IMAGE)
        spool = Spool(self.spool_dir, max_bytes)
        try:
            for start in range(0, len(content), 64 * 1024):
                await spool.write(content[start : start + 64 * 1024])
        except MediaTooLarge as exc:
            raise MediaTooLargeError(f"media is {exc}", max_bytes) from None
        mime = item.mime or self.types.get(item.url or "", "application/octet-stream")
        file = await spool.finish(mime, (item.url or "media").rsplit("/", 1)[-1])
        try:
            yield file
        finally:
            file.close()


def next_attempt(post: Post, ctx: FakeContext) -> Post:
    return dataclasses.replace(post, attempt=post.attempt + 1, publish_state=dict(ctx.state))
