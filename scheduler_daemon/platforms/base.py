"""The adapter Protocol every platform implements, the facts each one declares, and what
the daemon offers it.

An adapter turns one claimed ``Post`` into one platform post. It is built once with the
platform settings and an injected ``httpx.AsyncClient`` (the transport is the seam tests
and benchmarks replace), holds no per-post state, and:

* declares its ``facts`` (``PlatformFacts``): name, display name, whether a repeat is
  harmless, whether a connection needs a token, default pacing, API base, text and media
  limits. ``registry`` derives every list of platforms from these declarations;
* ``validate(post)`` checks the platform's rules locally and raises
  ``ContentRejectedError`` with a precise message: no API call is made for a post that
  would be rejected. ``Adapter.validate`` applies the declared limits; an adapter with
  rules of its own (Instagram's hashtags, Telegram's captions) writes it from the same
  ``check_length`` / ``check_media`` (``_rules``);
* ``publish(post, connection, ctx)`` makes the calls and returns a ``PublishResult``, or
  raises from the tree in ``scheduler_daemon.errors``, mapping foreign errors at the
  boundary with ``raise ... from``.

``PublishContext`` is the daemon's side: checkpoints that survive a crash or retry, token
refresh once per connection, and media resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError
from ..models import Connection, MediaItem, Post, PublishResult, Refresher
from ._rules import check_length, check_media

UNLIMITED = 10_000  # a concurrency this high means none: the pacer skips its semaphores


@dataclass(frozen=True)
class TextLimit:
    """At most ``limit`` of ``unit``, as ``count`` counts them in a post's text."""

    limit: int
    count: Callable[[str], int] = len
    unit: str = "characters"


@dataclass(frozen=True)
class MediaLimit:
    max_items: int
    images_only: bool = True  # else any file (Discord, Slack)


@dataclass(frozen=True)
class PlatformFacts:
    """What the rest of the daemon knows about a platform: its adapter declares it."""

    name: str  # content_posts.platform, platform_connections.platform
    display: str  # in messages: "LinkedIn refused the credentials ..."
    # True when repeating a publish of the same post cannot create a second post (an
    # idempotency key, a fixed record key, a container status check): an unknown outcome
    # is then retried, and a crashed daemon's unfinished post is published again.
    idempotent: bool = False
    tokenless: bool = False  # a connection needs no access token (log; webhook, whose token only signs)
    token_in_metadata: str | None = None  # a metadata key that can stand for the token (Discord's webhook_url)
    concurrency: tuple[int, int] = (50, 5)  # publishes in flight (per platform, per account)
    api_base: str | None = None  # default of SCHEDULER_<P>_API_BASE
    text: tuple[TextLimit, ...] = ()
    media: MediaLimit | None = None  # None: no media rule (and an empty post is fine)


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
    facts: ClassVar[PlatformFacts]

    @property
    def name(self) -> str: ...

    def validate(self, post: Post) -> None: ...

    async def publish(self, post: Post, connection: Connection, ctx: PublishContext) -> PublishResult: ...


class AdapterFactory(Protocol):
    facts: PlatformFacts  # not ClassVar: mypy matches class objects only against plain members

    def __call__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> PlatformAdapter: ...


class Adapter:
    """The part every adapter shares: settings, the injected client, the API base
    (``SCHEDULER_<P>_API_BASE`` or the declared default) and ``validate`` from the facts."""

    facts: ClassVar[PlatformFacts]

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.base = settings.api_base(self.facts.name, self.facts.api_base or "")

    @property
    def name(self) -> str:
        return self.facts.name

    def validate(self, post: Post) -> None:
        facts = self.facts
        for rule in facts.text:
            check_length(facts.display, rule.count(post.content), rule.limit, rule.unit)
        if facts.media is None:
            return
        check_media(facts.display, post, max_items=facts.media.max_items, images_only=facts.media.images_only)
        if not post.content.strip() and not post.media:
            thing = "an image" if facts.media.images_only else "a file"
            raise ContentRejectedError(f"{facts.display} needs text or {thing}; this post is empty")


class _Display(Mapping[str, str]):
    """Platform name → display name, read from the declared facts (``registry.FACTS``).

    A view, not a list: the registry imports every adapter, and adapters use this, so the
    registry is looked up when a message is made, not when this module is imported.
    """

    def __getitem__(self, platform: str) -> str:
        from .registry import FACTS

        return FACTS[platform].display

    def __iter__(self) -> Iterator[str]:
        from .registry import FACTS

        return iter(FACTS)

    def __len__(self) -> int:
        from .registry import FACTS

        return len(FACTS)


DISPLAY: Mapping[str, str] = _Display()
