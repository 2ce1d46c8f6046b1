"""Mastodon (any instance).

Connection row: ``metadata.instance_url`` = ``https://{instance}`` (else
``SCHEDULER_MASTODON_API_BASE``); ``access_token`` = a user token with
``write:statuses`` and ``write:media`` (it never expires; no refresh); optional
``metadata.max_characters`` and ``metadata.max_media_attachments`` (the instance's
``configuration.statuses`` values, default 500 and 4) and ``metadata.visibility``
(``public`` by default); ``account_id`` informational.

Flow: ``prepare``: images → ``POST /api/v2/media`` (multipart ``file`` + ``description``);
a 202 is polled on ``GET /api/v1/media/{id}`` until 200 (bounded), keeping the media ids;
``publish``: ``POST /api/v1/statuses`` with ``Idempotency-Key``. Text is counted in
graphemes with a URL as 23 characters and ``@user@domain`` as ``@user``.

Settings: ``SCHEDULER_MASTODON_API_BASE``, ``SCHEDULER_MASTODON_MAX_CHARACTERS``, media
poll interval/timeout. Exactly-once: ``Idempotency-Key: scheduler-<post id>`` — the
instance answers a repeat within an hour with the original status, so a lost answer is
re-sent once at once with the same key; if that is lost too the outcome is reported.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import regex

from ..errors import ContentRejectedError, OutcomeUnknownError, PlatformConfigError, PublishError, TransientError
from ..models import Connection, MediaItem, Post, PostItem, PublishResult
from ._calls import filename, json_object, poll, rate_limited, require_id, text_field
from ._http import body_excerpt, call, excerpt, retry_after
from ._rules import URL_LENGTH, check_length, check_media, graphemes
from ._tokens import TokenHolder, reconnect
from .base import Adapter, Item, MediaLimit, PlatformFacts, Prepared, PublishContext, describe
from .twitter_text import extract_urls

DEFAULT_MAX_MEDIA = 4
IMAGE_BYTES = 16 * 1024 * 1024
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


def _positive(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


class MastodonAdapter(Adapter):
    # Text and media limits are the instance's (metadata.max_characters, max_media_attachments):
    # validate_item applies them; the media fact gives the default and the alt text.
    # Pacing: an instance allows 300 requests per 5 min per account and per IP (the daemon's
    # address: every tenant on one instance shares it). 2 in flight per account, 10 in all.
    facts = PlatformFacts(
        "mastodon", "Mastodon", idempotent=True, concurrency=(10, 2), media=MediaLimit(DEFAULT_MAX_MEDIA, alt_text=True)
    )

    def validate_item(self, item: PostItem, what: str) -> None:
        self._validate(item, what, self.settings.mastodon_max_characters, DEFAULT_MAX_MEDIA)

    def _validate(self, item: PostItem, what: str, max_characters: int, max_media: int) -> None:
        check_length(self.facts.display, mastodon_length(item.content), max_characters, what=what)
        check_media(self.facts.display, item.media, max_items=max_media)
        if not item.content.strip() and not item.media:
            raise ContentRejectedError("Mastodon needs text or an image; this post is empty")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        meta = connection.metadata
        for index, item in enumerate(post.items):  # the instance's own limits
            self._validate(
                item, describe(index, len(post.items)),
                _positive(meta.get("max_characters"), self.settings.mastodon_max_characters),
                _positive(meta.get("max_media_attachments"), DEFAULT_MAX_MEDIA),
            )
        base = self._instance(connection)
        if not post.media:
            return {}
        holder = TokenHolder(self.name, connection, ctx, None)
        return {"media_ids": [await self._upload(holder, ctx, base, item) for item in post.media]}

    def _instance(self, connection: Connection) -> str:
        base = str(connection.metadata.get("instance_url") or self.settings.api_bases.get("mastodon") or "").rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise PlatformConfigError("the mastodon connection needs metadata.instance_url (https://your.instance)")
        return base

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        meta = connection.metadata
        base = self._instance(connection)
        holder = TokenHolder(self.name, connection, ctx, None)
        media_ids: list[str] = prepared.get("media_ids", [])
        body: dict[str, Any] = {"status": item.content, "visibility": str(meta.get("visibility") or "public")}
        if media_ids:
            body["media_ids"] = media_ids
        headers = {"authorization": f"Bearer {holder.token}", "idempotency-key": f"scheduler-{post.id}"}

        def build() -> httpx.Request:
            return self.client.build_request("POST", f"{base}/api/v1/statuses", json=body, headers=headers)

        try:
            response = await call(self.client, None, build, classify, what="Mastodon post", creates=True)
        except OutcomeUnknownError:  # same Idempotency-Key: the instance returns the original status
            response = await call(self.client, None, build, classify, what="Mastodon post", creates=True)
        data = json_object(response)
        return PublishResult(require_id(data, "id", what="Mastodon post"), text_field(data, "url"))

    async def _upload(self, holder: TokenHolder, ctx: PublishContext, base: str, item: MediaItem) -> str:
        content, mime = await ctx.media_bytes(item, IMAGE_BYTES)
        files = {"file": (filename(item, mime, 0), content, mime)}
        data = {"description": item.alt} if item.alt else {}
        headers = {"authorization": f"Bearer {holder.token}"}
        response = await call(
            self.client, None,
            lambda: self.client.build_request("POST", f"{base}/api/v2/media", files=files, data=data, headers=headers),
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
