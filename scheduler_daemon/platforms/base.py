"""The adapter Protocol every platform implements, the facts each one declares, and what
the daemon offers it.

An adapter turns one claimed ``Post`` into platform posts. It is built once with the
platform settings and an injected ``httpx.AsyncClient`` (the transport is the seam tests
and benchmarks replace), holds no per-post state, and:

* declares its ``facts`` (``PlatformFacts``): name, display name, whether a repeat is
  harmless, whether a connection needs a token, default pacing, API base, and what a post
  may hold there: text limits, media (how many per post, video and its limits, images and
  videos mixed, alt text), a thread's length, a first comment, the options it takes.
  ``registry`` derives every list of platforms from these declarations, and the README's
  platform tables come from them (``capabilities``);
* ``validate(post)`` checks the platform's rules locally and raises
  ``ContentRejectedError`` (``InvalidPostError`` for options) with a precise message: no
  API call is made for a post that would be rejected. ``Adapter.validate`` applies the
  declared facts to the whole post (thread length, first comment, options) and
  ``validate_item`` to each item; an adapter with rules of its own (Instagram's hashtags,
  Telegram's captions) overrides ``validate_item`` from the same ``_rules`` checks;
* ``prepare(post, connection, ctx) -> Prepared`` does everything that does not make the
  post visible: token refresh, media resolution, downloads and checks (video limits need
  the file: ``_rules`` has no I/O), uploads, containers and the wait for them. What it
  returns is a JSON object (it is checkpointed in ``publish_state`` and may be used by
  another process later): media ids, container ids, prepared records. Everything it sends
  counts as publishing nothing: a lost answer in it is retried;
* ``publish(post, item, connection, ctx, prepared) -> PublishResult`` makes one item
  visible: the final create call (a reply to ``item.reply_to`` for items after the first),
  and whatever must wait for the parent's id (a Threads reply's container). It raises from
  the tree in ``scheduler_daemon.errors``, mapping foreign errors with ``raise ... from``;
* ``comment(post, on, connection, ctx, prepared) -> PublishResult`` posts the first
  comment under the published post ``on`` (platforms whose facts declare one).

The driver (``delivery``) runs them: prepare (or reuse what an earlier attempt prepared for
the same post), each item in order with its id checkpointed before the next, then the
first comment. ``PublishContext`` is the daemon's side: checkpoints that survive a crash or
retry, token refresh once per connection, and media resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, InvalidPostError, PlatformConfigError
from ..mediafile import MediaFile
from ..models import Connection, MediaItem, Post, PostItem, PublishResult, Refresher
from ._http import Ready
from ._rules import check_alt_text, check_length, check_media, option_problem

UNLIMITED = 10_000  # a concurrency this high means none: the pacer skips its semaphores

# What ``prepare`` hands ``publish``: a JSON object of the adapter's own shape.
Prepared = dict[str, Any]


@dataclass(frozen=True)
class TextLimit:
    """At most ``limit`` of ``unit``, as ``count`` counts them in a post's text."""

    limit: int
    count: Callable[[str], int] = len
    unit: str = "characters"


@dataclass(frozen=True)
class VideoLimit:
    """The videos a platform takes through its publish API, as its docs state them. None
    means the platform does not state that limit."""

    containers: tuple[str, ...] = ("mp4", "mov")  # probe.VideoFacts.container values
    video_codecs: tuple[str, ...] = ("h264",)  # probe.VideoFacts.video_codec values
    audio_codecs: tuple[str, ...] = ("aac",)  # a video without sound is always fine
    max_bytes: int | None = None
    min_bytes: int | None = None
    max_seconds: float | None = None
    min_seconds: float | None = None
    max_width: int | None = None
    max_height: int | None = None
    max_frame_rate: float | None = None
    min_frame_rate: float | None = None
    max_bitrate: int | None = None  # bits per second
    per_post: int = 1  # videos in one post
    per_day: int | None = None  # videos one account may publish in a moving 24 h (the platform refuses more)


@dataclass(frozen=True)
class MediaLimit:
    max_items: int  # media in one post (a carousel's size)
    images_only: bool = True  # else any file (Discord, Slack)
    video: VideoLimit | None = None  # None: no video through this adapter
    mixed: bool = False  # images and videos in one post (Instagram carousels)
    alt_text: bool = False  # the platform gets each image's alt text (else it is left out)
    alt_text_max: int | None = None  # its longest alt text, where the platform states one


OptionKind = Literal["boolean", "integer", "string", "strings"]


@dataclass(frozen=True)
class Option:
    """A key of ``content_posts.platform_options`` the adapter takes."""

    key: str
    kind: OptionKind
    choices: tuple[str, ...] = ()  # for strings: the values allowed (empty: any)
    description: str = ""


@dataclass(frozen=True)
class PlatformFacts:
    """What the rest of the daemon knows about a platform: its adapter declares it."""

    name: str  # content_posts.platform, platform_connections.platform
    display: str  # in messages: "LinkedIn refused the credentials ..."
    # True when repeating a publish of the same post cannot create a second post (an
    # idempotency key, a fixed record key, a container status check): an unknown outcome
    # is then retried, and a crashed daemon's unfinished post is published again.
    idempotent: bool = False
    # Where idempotent: how long after the FIRST send a repeat is still deduplicated (a key
    # the server forgets); past it a repeat could publish twice, so it becomes an unknown
    # outcome. None: for as long as the post exists (a fixed record key).
    dedupe_window_seconds: float | None = None
    tokenless: bool = False  # a connection needs no access token (log; webhook, whose token only signs)
    token_in_metadata: str | None = None  # a metadata key that can stand for the token (Discord's webhook_url)
    concurrency: tuple[int, int] = (50, 5)  # publishes in flight (per platform, per account)
    api_base: str | None = None  # default of SCHEDULER_<P>_API_BASE
    text: tuple[TextLimit, ...] = ()
    media: MediaLimit | None = None  # None: no media rule (and an empty post is fine)
    thread: int = 1  # items one post may have (the post and its replies); 1: no threads
    first_comment: TextLimit | None = None  # None: no first comment
    options: tuple[Option, ...] = ()  # the keys of platform_options it takes


class PublishContext(Protocol):
    """Services the daemon gives an adapter for one publish attempt."""

    @property
    def state(self) -> Mapping[str, Any]:
        """The row's ``publish_state`` as this attempt has it: what earlier attempts and this
        one checkpointed (inside ``publish``: the item's own)."""
        ...

    async def checkpoint(self, **values: Any) -> None:
        """Merge ``values`` into the row's ``publish_state`` and commit it now.

        Use it before a step whose effect must not be repeated (e.g. store a record key
        before writing the record); the next attempt sees it in ``item.state``. Inside
        ``publish`` the values are the item's own (the driver scopes them).
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
        """The item's bytes and MIME type, streamed and capped at ``max_bytes``: for images."""
        ...

    def media_file(self, item: MediaItem, max_bytes: int) -> AbstractAsyncContextManager[MediaFile]:
        """The item spooled to a private temporary file, capped at ``max_bytes`` and probed
        (``MediaFile.video``): for video, never held whole in memory. Freed on exit."""
        ...


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """The items a reply answers: the thread's first (``root``) and the one before it."""

    root: PublishResult
    parent: PublishResult


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a post, as the driver hands it to ``publish``.

    ``index`` 0 is the post itself; ``reply_to`` is None for it. ``state`` is what earlier
    attempts checkpointed for this item. ``resumed``: an earlier attempt may have sent this
    item already (it was the next one when that attempt ended): look before sending it again
    where the platform allows it (a container's status, a record key).
    """

    index: int
    total: int
    content: str
    media: tuple[MediaItem, ...]
    reply_to: ReplyTo | None = None
    state: Mapping[str, Any] = field(default_factory=dict)
    resumed: bool = False
    ready: Ready | None = None  # its request, built before the instant (delivery.build_ahead), or None

    @property
    def number(self) -> int:
        """1-based, as messages count."""
        return self.index + 1


class PlatformAdapter(Protocol):
    facts: ClassVar[PlatformFacts]

    @property
    def name(self) -> str: ...

    def validate(self, post: Post) -> None: ...

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared: ...

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult: ...

    async def comment(
        self, post: Post, on: PublishResult, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult: ...


class AdapterFactory(Protocol):
    facts: PlatformFacts  # not ClassVar: mypy matches class objects only against plain members

    def __call__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> PlatformAdapter: ...


def describe(position: int, total: int) -> str:
    """How messages name an item: "this post" alone, else "item 3 of 4"."""
    return "this post" if total == 1 else f"item {position + 1} of {total}"


class Adapter:
    """The part every adapter shares: settings, the injected client, the API base
    (``SCHEDULER_<P>_API_BASE`` or the declared default), ``validate`` from the facts, and
    the defaults of an adapter with nothing to prepare and no first comment."""

    facts: ClassVar[PlatformFacts]

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.base = settings.api_base(self.facts.name, self.facts.api_base or "")

    @property
    def name(self) -> str:
        return self.facts.name

    def validate(self, post: Post) -> None:
        """The whole post: its thread's length, its first comment, its options, each item."""
        facts = self.facts
        items = post.items
        if len(items) > facts.thread:
            if facts.thread == 1:
                raise ContentRejectedError(
                    f"{facts.display} takes no threads here: this post has {len(items) - 1} replies in its thread"
                )
            raise ContentRejectedError(
                f"{facts.display} takes threads of at most {facts.thread} posts; this one has {len(items)}"
            )
        if post.first_comment:
            if facts.first_comment is None:
                raise ContentRejectedError(f"{facts.display} takes no first comment here; this post has one")
            rule = facts.first_comment
            check_length(facts.display, rule.count(post.first_comment), rule.limit, rule.unit, "the first comment")
        check_options(facts, post.options)
        for index, item in enumerate(items):
            self.validate_item(item, describe(index, len(items)))

    def validate_item(self, item: PostItem, what: str) -> None:
        """One item by the declared text and media limits; ``what`` names it in messages."""
        facts = self.facts
        for rule in facts.text:
            check_length(facts.display, rule.count(item.content), rule.limit, rule.unit, what)
        if facts.media is None:
            return
        media = facts.media
        check_media(
            facts.display, item.media, max_items=media.max_items, images_only=media.images_only,
            video=media.video is not None, mixed=media.mixed, what="this one" if what == "this post" else what,
        )
        if media.alt_text:
            check_alt_text(facts.display, item.media, media.alt_text_max, what)
        if not item.content.strip() and not item.media:
            thing = "an image" if media.images_only else "a file"
            raise ContentRejectedError(
                f"{facts.display} needs text or {thing}; " + ("this post is empty" if what == "this post"
                                                               else f"{what} is empty")
            )

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        """Nothing to prepare: the final call carries everything."""
        return {}

    async def comment(
        self, post: Post, on: PublishResult, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        raise PlatformConfigError(f"{self.facts.display} has no first comment in this daemon")


def check_options(facts: PlatformFacts, options: Mapping[str, Any]) -> None:
    """``platform_options`` against the keys the platform declares: unknown keys and wrong
    types are refused, naming what it takes."""
    if not options:
        return
    known = {option.key: option for option in facts.options}
    if unknown := sorted(set(options) - set(known)):
        takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
        plural = "s" if len(unknown) > 1 else ""
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise InvalidPostError(f"platform_options: {facts.display} has no option{plural} {shown}; {takes}")
    for key, value in options.items():
        option = known[key]
        if problem := option_problem(option.kind, value, option.choices):
            raise InvalidPostError(f"platform_options.{key} {problem}")


def check_video(display: str, limit: VideoLimit | None, file: MediaFile, what: str = "this post") -> None:
    """A spooled video against the platform's documented limits, before any upload; each
    refusal states the platform's rule."""
    if limit is None:
        raise ContentRejectedError(f"{display} takes no video here; {what} has one")
    facts = file.video
    if facts is None:
        why = f" ({file.problem})" if file.problem else ""
        raise ContentRejectedError(f"{display}: the video of {what} could not be read as a video file{why}")

    def refuse(rule: str, found: str) -> ContentRejectedError:
        return ContentRejectedError(f"{display} takes {rule}; the video of {what} {found}")

    if facts.container not in limit.containers:
        raise refuse(f"{_either(limit.containers)} videos", f"is {facts.container.upper()}")
    if facts.video_codec is None:
        raise refuse("videos with a video track", "has none")
    if facts.video_codec not in limit.video_codecs:
        raise refuse(f"{_either(limit.video_codecs)} video", f"is {facts.video_codec.upper()}")
    if facts.audio_codec is not None and facts.audio_codec not in limit.audio_codecs:
        raise refuse(f"{_either(limit.audio_codecs)} sound", f"has {facts.audio_codec.upper()}")
    if limit.max_bytes is not None and file.size > limit.max_bytes:
        raise refuse(f"videos up to {_bytes(limit.max_bytes)}", f"is {_bytes(file.size)}")
    if limit.min_bytes is not None and file.size < limit.min_bytes:
        raise refuse(f"videos of at least {_bytes(limit.min_bytes)}", f"is {_bytes(file.size)}")
    seconds = facts.duration
    if (limit.max_seconds is not None or limit.min_seconds is not None) and seconds is None:
        raise refuse("videos of a known duration", "states none")
    if seconds is not None and limit.max_seconds is not None and seconds > limit.max_seconds:
        raise refuse(f"videos up to {limit.max_seconds:g} s", f"lasts {seconds:.1f} s")
    if seconds is not None and limit.min_seconds is not None and seconds < limit.min_seconds:
        raise refuse(f"videos of at least {limit.min_seconds:g} s", f"lasts {seconds:.1f} s")
    width, height = facts.width or 0, facts.height or 0
    if (limit.max_width and width > limit.max_width) or (limit.max_height and height > limit.max_height):
        raise refuse(f"videos up to {limit.max_width or '∞'}×{limit.max_height or '∞'}", f"is {width}×{height}")
    rate = facts.frame_rate
    if rate is not None and limit.max_frame_rate is not None and rate > limit.max_frame_rate:
        raise refuse(f"videos up to {limit.max_frame_rate:g} frames per second", f"has {rate:g}")
    if rate is not None and limit.min_frame_rate is not None and rate < limit.min_frame_rate:
        raise refuse(f"videos of at least {limit.min_frame_rate:g} frames per second", f"has {rate:g}")
    if facts.bitrate is not None and limit.max_bitrate is not None and facts.bitrate > limit.max_bitrate:
        raise refuse(f"videos up to {limit.max_bitrate / 1e6:g} Mbit/s", f"has {facts.bitrate / 1e6:.1f} Mbit/s")


def _either(values: Sequence[str]) -> str:
    shown = [v.upper() for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _bytes(count: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:.4g} {unit}"
    return f"{count} bytes"


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
