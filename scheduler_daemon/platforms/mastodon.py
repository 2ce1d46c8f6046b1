"""Mastodon (any instance).

Connection row: ``metadata.instance_url`` = ``https://{instance}`` (else
``SCHEDULER_MASTODON_API_BASE``); ``access_token`` = a user token with
``write:statuses`` and ``write:media`` (it never expires; no refresh); optional
``metadata.max_characters`` and ``metadata.max_media_attachments`` (used where the instance
does not state its own) and ``metadata.visibility`` (``public`` by default);
``account_id`` informational.

Flow: ``prepare`` reads the instance's limits (``GET /api/v2/instance``, see
``mastodon_instance``) and checks every item against them, then uploads each item's media
→ ``POST /api/v2/media`` (multipart ``file`` + ``description``, the alt text): images as
bytes, a video (alone in its status) spooled, checked against the instance's size, frame
rate, pixel count and MIME types before the upload, and streamed from the spool. A 202 is
polled on ``GET /api/v1/media/{id}`` until 200 (bounded; a 422 there is a file the
instance could not process), keeping the media ids per item. ``publish``:
``POST /api/v1/statuses`` with ``Idempotency-Key``, each item after the first with
``in_reply_to_id`` = the item before it. ``platform_options``: ``visibility``,
``sensitive``, ``spoiler_text``, ``language``. Text is counted in graphemes with a URL as
23 characters and ``@user@domain`` as ``@user``.

Settings: ``SCHEDULER_MASTODON_API_BASE``, ``SCHEDULER_MASTODON_MAX_CHARACTERS``, media
poll interval/timeout. Exactly-once: ``Idempotency-Key: scheduler-<post id>`` (item n ≥ 2 of
a thread: ``scheduler-<post id>-<n>``) — the
instance answers a repeat within an hour with the original status, so a lost answer is
re-sent once at once with the same key; if that is lost too the outcome is reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import regex

from ..errors import ContentRejectedError, OutcomeUnknownError, PlatformConfigError, PublishError, TransientError
from ..mediafile import MediaFile
from ..models import Connection, MediaItem, Post, PostItem, PublishResult
from ._calls import filename, json_object, poll, rate_limited, require_id, text_field
from ._http import body_excerpt, call, excerpt, retry_after, send
from ._rules import URL_LENGTH, check_alt_text, check_length, check_media, graphemes
from ._tokens import TokenHolder, reconnect
from ._video import check_one_video, checked_video, is_video, item_media
from .base import Adapter, Item, MediaLimit, Option, PlatformFacts, Prepared, PublishContext, describe
from .mastodon_instance import DEFAULT_MAX_MEDIA, DESCRIPTION_MAX, VIDEO, Limits
from .mastodon_instance import limits as instance_limits
from .twitter_text import extract_urls

THREAD_MAX = 25  # Mastodon states no limit for a reply chain; ours, so one row stays reviewable
VISIBILITIES = ("public", "unlisted", "private", "direct")
_REMOTE_MENTION = regex.compile(r"(?<![\w@])(@[a-z0-9_]+)@[a-z0-9.-]+\.[a-z]{2,}", regex.IGNORECASE)


def mastodon_length(text: str) -> int:
    """Mastodon's count (``StatusLengthValidator``): grapheme clusters, where each
    ``http(s)://`` URL counts 23 (a bare ``example.com`` counts as typed) and a remote
    mention ``@user@domain`` counts as ``@user``."""
    parts, last, urls = [], 0, 0
    for span in extract_urls(text, without_protocol=False):
        parts.append(text[last : span.start])
        last, urls = span.end, urls + 1
    parts.append(text[last:])
    return URL_LENGTH * urls + graphemes(_REMOTE_MENTION.sub(r"\1", "".join(parts)))


def reset_wait(response: httpx.Response) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (an ISO-8601 timestamp on Mastodon)."""
    raw = response.headers.get("x-ratelimit-reset")
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def classify(response: httpx.Response) -> PublishError | None:
    if response.is_success:
        return None
    message = excerpt(json_object(response).get("error") or "") or body_excerpt(response)
    status = response.status_code
    if status in (401, 403):
        return reconnect("mastodon", message)
    if status == 404:
        return PlatformConfigError(f"Mastodon answered 404 ({message}): check metadata.instance_url")
    if status == 429:
        return rate_limited("mastodon", response, reset_wait(response), message)
    if status >= 500:
        return TransientError(f"Mastodon server error (HTTP {status})", retry_after(response))
    return ContentRejectedError(f"Mastodon rejected the post: {message}")


OPTIONS = (
    Option("visibility", "string", VISIBILITIES, "who sees it (metadata.visibility, else public)"),
    Option("sensitive", "boolean", description="its media are hidden behind a warning"),
    Option("spoiler_text", "string", description="a content warning shown before the text"),
    Option("language", "string", description="its ISO 639 language code"),
)


class MastodonAdapter(Adapter):
    # Text and media limits are the instance's (GET /api/v2/instance): validate_item applies
    # the defaults, prepare the instance's own; the media fact gives the defaults.
    # Pacing: an instance allows 300 requests per 5 min per account and per IP (the daemon's
    # address: every tenant on one instance shares it). 2 in flight per account, 10 in all.
    facts = PlatformFacts(
        "mastodon", "Mastodon", idempotent=True, concurrency=(10, 2),
        media=MediaLimit(DEFAULT_MAX_MEDIA, video=VIDEO, alt_text=True, alt_text_max=DESCRIPTION_MAX),
        thread=THREAD_MAX, options=OPTIONS,
        dedupe_window_seconds=55 * 60,  # the server keeps an Idempotency-Key for 3,600 s: 5 min to spare
    )

    def validate_item(self, item: PostItem, what: str) -> None:
        self._validate(item, what, Limits(self.settings.mastodon_max_characters, DEFAULT_MAX_MEDIA))

    def _validate(self, item: PostItem, what: str, limits: Limits) -> None:
        display = self.facts.display
        check_length(display, mastodon_length(item.content), limits.max_characters, what=what)
        check_media(display, item.media, max_items=limits.max_media, video=True, mixed=False,
                    what="this one" if what == "this post" else what)
        check_one_video(display, item.media, what)
        check_alt_text(display, item.media, limits.description_max, what)
        if not item.content.strip() and not item.media:
            raise ContentRejectedError("Mastodon needs text or an image; " + (
                "this post is empty" if what == "this post" else f"{what} is empty"))

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        base = self._instance(connection)
        limits = await self._limits(base, connection)
        items = post.items
        for index, item in enumerate(items):  # the instance's own limits
            self._validate(item, describe(index, len(items)), limits)
        if not any(item.media for item in items):
            return {}
        holder = TokenHolder(self.name, connection, ctx, None)
        media = []
        for index, item in enumerate(items):
            what = describe(index, len(items))
            media.append([await self._upload(holder, ctx, base, m, limits, what) for m in item.media])
        return {"media": media}

    def _instance(self, connection: Connection) -> str:
        base = str(connection.metadata.get("instance_url") or self.settings.api_bases.get("mastodon") or "").rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise PlatformConfigError("the mastodon connection needs metadata.instance_url (https://your.instance)")
        return base

    async def _limits(self, base: str, connection: Connection) -> Limits:
        """The instance's limits; an instance that does not answer its (public) description
        leaves the stated fallbacks (``mastodon_instance``)."""
        request = self.client.build_request("GET", f"{base}/api/v2/instance")
        try:
            response = await send(self.client, request, what="Mastodon instance")
        except PublishError:
            response = None
        data = json_object(response) if response is not None and response.is_success else {}
        return instance_limits(data, connection.metadata, self.settings.mastodon_max_characters)

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        options = post.options
        base = self._instance(connection)
        holder = TokenHolder(self.name, connection, ctx, None)
        visibility = options.get("visibility") or connection.metadata.get("visibility") or "public"
        body: dict[str, Any] = {"status": item.content, "visibility": str(visibility)}
        body.update({key: options[key] for key in ("sensitive", "spoiler_text", "language") if key in options})
        if media_ids := item_media(prepared, item.index):
            body["media_ids"] = media_ids
        if item.reply_to is not None:  # a thread: each item answers the one before it
            body["in_reply_to_id"] = item.reply_to.parent.platform_post_id
        # One key per item: a repeat of the same item returns its status, never a second one.
        key = f"scheduler-{post.id}" if item.index == 0 else f"scheduler-{post.id}-{item.number}"
        headers = {"authorization": f"Bearer {holder.token}", "idempotency-key": key}

        def build() -> httpx.Request:
            return self.client.build_request("POST", f"{base}/api/v1/statuses", json=body, headers=headers)

        try:
            response = await call(self.client, None, build, classify, what="Mastodon post", creates=True)
        except OutcomeUnknownError:  # same Idempotency-Key: the instance returns the original status
            response = await call(self.client, None, build, classify, what="Mastodon post", creates=True)
        data = json_object(response)
        return PublishResult(require_id(data, "id", what="Mastodon post"), text_field(data, "url"))

    async def _upload(
        self, holder: TokenHolder, ctx: PublishContext, base: str, item: MediaItem, limits: Limits, what: str
    ) -> str:
        if is_video(item):
            async with checked_video(ctx, self.facts.display, limits.video, item, what) as file:
                self._check_video(file, limits, what)
                return await self._send_media(holder, base, item, lambda: (file.name, file.open(), file.mime))
        content, mime = await ctx.media_bytes(item, limits.image_bytes)
        _check_type(mime, limits, what)
        return await self._send_media(holder, base, item, lambda: (filename(item, mime, 0), content, mime))

    def _check_video(self, file: MediaFile, limits: Limits, what: str) -> None:
        """What the instance states beyond ``check_video``: its MIME types and pixel count."""
        _check_type(file.mime, limits, what)
        width, height = (file.video.width or 0, file.video.height or 0) if file.video else (0, 0)
        if width * height > limits.video_pixels:
            raise ContentRejectedError(
                f"Mastodon takes videos of at most {limits.video_pixels:,} pixels here; the video of {what}"
                f" is {width}×{height}"
            )

    async def _send_media(self, holder: TokenHolder, base: str, item: MediaItem, part: Callable[[], Any]) -> str:
        """``POST /api/v2/media`` (the file streamed from its part), then the wait for it."""
        data = {"description": item.alt} if item.alt else {}
        headers = {"authorization": f"Bearer {holder.token}"}
        response = await call(
            self.client, None,
            lambda: self.client.build_request(
                "POST", f"{base}/api/v2/media", files={"file": part()}, data=data, headers=headers
            ),
            classify, what="Mastodon media upload",
        )
        media_id = text_field(json_object(response), "id")
        if not media_id:
            raise TransientError("Mastodon media upload: no media id in the answer")
        if response.status_code == 202:
            await self._wait_processed(base, headers, media_id)
        return media_id

    async def _wait_processed(self, base: str, headers: dict[str, str], media_id: str) -> None:
        async def ready() -> bool:
            response = await call(
                self.client, None,
                lambda: self.client.build_request("GET", f"{base}/api/v1/media/{media_id}", headers=headers),
                classify, what="Mastodon media status",
            )
            return response.status_code == 200

        await poll(
            ready, interval=self.settings.media_poll_interval_seconds,
            timeout=self.settings.media_poll_timeout_seconds, what="Mastodon media",
        )


def _check_type(mime: str, limits: Limits, what: str) -> None:
    """A file of a type the instance states it takes (``supported_mime_types``), where it states them."""
    if limits.mime_types and mime not in limits.mime_types:
        raise ContentRejectedError(f"Mastodon: this instance takes no {mime[:50]} files; {what} has one")
