"""The adapter Protocol every platform implements, and what the daemon offers it.

An adapter turns one claimed ``Post`` into one platform post. It is built once with the
platform settings and an injected ``httpx.AsyncClient`` (the transport is the seam tests
and benchmarks replace), holds no per-post state, and:

* ``validate(post)`` checks the platform's rules locally and raises
  ``ContentRejectedError`` with a precise message: no API call is made for a post that
  would be rejected;
* ``publish(post, connection, ctx)`` makes the calls and returns a ``PublishResult``, or
  raises from the tree in ``scheduler_daemon.errors``, mapping foreign errors at the
  boundary with ``raise ... from``.

``PublishContext`` is the daemon's side: checkpoints that survive a crash or retry, token
refresh once per connection, and media resolution.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx

from ..models import Connection, MediaItem, Post, PublishResult
from .settings import PlatformSettings


@dataclass(frozen=True)
class TokenSet:
    """New tokens from a refresh; None keeps the stored value."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: dt.datetime | None = None
    metadata: Mapping[str, Any] | None = None


Refresher = Callable[[Connection], Awaitable[TokenSet]]


class PublishContext(Protocol):
    """Services the daemon gives an adapter for one publish attempt."""

    async def checkpoint(self, **values: Any) -> None:
        """Merge ``values`` into the row's ``publish_state`` and commit it now.

        Use it before a step whose effect must not be repeated (e.g. store an Instagram
        container id before ``media_publish``); the next attempt sees it in
        ``post.publish_state``.
        """
        ...

    async def refresh_tokens(self, connection: Connection, refresher: Refresher) -> Connection:
        """Refresh the connection's tokens once, even with concurrent publishes.

        If another publish already replaced the token that ``connection`` holds, returns
        the stored one without calling ``refresher``; otherwise calls it (holding no
        database connection) and stores its result if the row still holds the old token,
        else returns the row that won.
        """
        ...

    async def media_url(self, item: MediaItem) -> str:
        """A URL the platform can fetch (a signed URL for a Supabase ``storage_path``)."""
        ...

    async def media_bytes(self, item: MediaItem, max_bytes: int) -> tuple[bytes, str]:
        """The item's bytes and MIME type, streamed and capped at ``max_bytes``."""
        ...


class PlatformAdapter(Protocol):
    name: ClassVar[str]
    # True when repeating a publish of the same post cannot create a second post (an
    # idempotency key, a fixed record key, a container status check): an unknown outcome
    # is then retried, and a crashed daemon's unfinished post is published again.
    idempotent: ClassVar[bool]

    def validate(self, post: Post) -> None: ...

    async def publish(self, post: Post, connection: Connection, ctx: PublishContext) -> PublishResult: ...


class AdapterFactory(Protocol):
    name: str  # not ClassVar: mypy matches class objects only against plain members

    def __call__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> PlatformAdapter: ...
