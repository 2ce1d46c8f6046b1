"""X (Twitter) API v2.

Connection row: ``access_token`` = an OAuth 2.0 user token (2 hours) with
``tweet.write users.read tweet.read media.write offline.access``; ``refresh_token`` = the
rotating refresh token (each refresh returns a new one, stored atomically through the
daemon); ``token_expires_at`` drives the refresh (before expiry within the margin, or
after a first 401); ``account_id`` = the user id (informational); ``metadata.username``
gives the public URL ``https://x.com/{username}/status/{id}`` (else ``/i/web/status``);
``metadata.max_chars`` = the account's post limit when it may post long (X Premium, up
to 25,000 weighted characters; 280 otherwise).

Flow: ``prepare``, for every item of the thread: images → ``POST /2/media/upload``
(multipart ``media`` + ``media_category``; polls ``processing_info`` when present), then
their alt text → ``POST /2/media/metadata``; a video (alone in its post) is spooled,
checked against ``VIDEO`` before any upload, and sent by the chunked upload
(``/2/media/upload/initialize``, ``/{id}/append`` per 4 MB segment read from the spool,
``/{id}/finalize``, then ``GET /2/media/upload?command=STATUS`` until ``succeeded``;
``failed`` refuses the post with X's reason). The media ids are kept per item.
``publish``: ``POST /2/tweets`` ``{text, media.media_ids}``, each item after the first with
``reply.in_reply_to_tweet_id`` = the item before it; the first comment is the author's own
reply to the first item. ``platform_options``: ``reply_settings``, ``quote_tweet_id``.
Text: 280 weighted characters by twitter-text v3 (``twitter_text.weighted_length``: URL =
23, emoji = 2, CJK = 2), per item and for the first comment; at most 4 images, or one GIF,
or one video. A 429 whose problem type is ``usage-capped``
means the plan's monthly cap or the credits are used up: a config error (the post goes
back to draft), not a 15-minute rate limit to wait out.

Settings: ``SCHEDULER_X_API_BASE`` (default ``https://api.x.com/2``),
``SCHEDULER_X_CLIENT_ID`` (+ ``SCHEDULER_X_CLIENT_SECRET`` for confidential clients),
token refresh margin, media poll interval/timeout. Exactly-once: none offered (X only
rejects exact duplicates with 403, naming no post). On ``POST /2/tweets`` only a 429
``rate-limit-exceeded`` (X's limiter refused the call), a refused connection and the
permanent errors prove that nothing was posted; a 5xx, a timeout or a reset is an unknown
outcome, reported and never retried (``_http.on_create``). Uploads are retried freely.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import ContentRejectedError, PlatformConfigError, PreparedStaleError, PublishError, TransientError
from ..models import Connection, MediaItem, Post, PostItem, PublishResult, Refresher, TokenSet
from ._calls import filename, json_object, poll, rate_limited, require_id, seconds_until_epoch, text_field
from ._http import body_excerpt, call, excerpt, retry_after, send
from ._rules import check_length
from ._tokens import TokenHolder, reconnect, refreshed_tokens
from ._video import check_one_video, checked_video, is_video, item_media
from .base import (
    Adapter,
    Item,
    MediaLimit,
    Option,
    PlatformFacts,
    Prepared,
    PublishContext,
    TextLimit,
    VideoLimit,
    describe,
)
from .twitter_text import weighted_length

LONG_POST_MAX = 25_000  # X Premium's long posts
_UNIT = "weighted characters (a URL counts 23)"
IMAGE_BYTES = 5 * 1024 * 1024
GIF_BYTES = 15 * 1024 * 1024
EXPIRY_MARGIN_SECONDS = 60  # a media id this close to lapsing is uploaded again rather than risked
SEGMENT_BYTES = 4 * 1024 * 1024  # an APPEND segment may be at most 5 MB
ALT_TEXT_MAX = 1_000  # media metadata: alt_text.text "must be <= 1000 chars"
THREAD_MAX = 25  # X states no limit for a reply chain; ours, so one row stays reviewable
# "media best practices" (docs.x.com/x-api/media/quickstart/best-practices, tweet_video):
# MP4 or MOV, H.264 with AAC LC sound, 0.5–140 s, 512 MB, at most 60 frames per second.
VIDEO = VideoLimit(("mp4", "mov"), ("h264",), ("aac",), max_bytes=512_000_000, max_seconds=140,
                   min_seconds=0.5, max_frame_rate=60)
OPTIONS = (
    Option("reply_settings", "string", ("following", "mentionedUsers", "subscribers", "verified"),
           "who may reply (everyone when absent)"),
    Option("quote_tweet_id", "string", description="the post this one quotes (the first item)"),
)
_AUTH_TYPES = ("client-forbidden", "oauth1-permissions", "not-authorized-for-resource", "unsupported-authentication")


def _reset_wait(response: httpx.Response) -> float | None:
    waits = [
        seconds_until_epoch(response.headers.get(f"{prefix}-reset"))
        for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour")
        if response.headers.get(f"{prefix}-remaining") == "0"
    ]
    known = [w for w in waits if w is not None]
    if known:
        return max(known)
    return seconds_until_epoch(response.headers.get("x-rate-limit-reset"))


def _detail(data: dict[str, Any], response: httpx.Response) -> str:
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("message"):
        return str(errors[0]["message"])[:300]
    return str(data.get("detail") or data.get("title") or body_excerpt(response))[:300]


def classify(response: httpx.Response) -> PublishError | None:
    if response.is_success:
        return None
    data = json_object(response)
    detail, kind = _detail(data, response), str(data.get("type") or "")
    status = response.status_code
    if status == 401:
        return reconnect("x", detail, refreshable=True)
    if status == 403:
        if "duplicate" in detail.lower():
            return ContentRejectedError(f"X rejected the post: {detail}")
        if kind.endswith(_AUTH_TYPES):
            return reconnect("x", detail)
        return ContentRejectedError(f"X refused the post (HTTP 403): {detail}")
    if status == 429 and (kind.endswith("usage-capped") or data.get("title") == "UsageCapExceeded"):
        return PlatformConfigError(
            f"the X API plan or credits are exhausted ({detail}): raise the plan or add credits, then reschedule"
        )
    if status == 429:
        wait = _reset_wait(response)
        return rate_limited("x", response, wait if wait is not None else retry_after(response), detail)
    if status >= 500:
        return TransientError(f"X server error (HTTP {status})", retry_after(response))
    return ContentRejectedError(f"X rejected the post: {detail}")


def _media_id(data: dict[str, Any], what: str, expiries: list[float]) -> str:
    """The media id of an upload's answer; when it lapses goes to ``expiries``."""
    media_id = text_field(data, "data", "id")
    if not media_id:
        raise TransientError(f"{what}: no media id in the answer")
    lifetime = data["data"].get("expires_after_secs")
    if isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool):
        expiries.append(time.time() + lifetime)
    return media_id


def _options(options: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``platform_options`` as ``POST /2/tweets`` fields of item ``index`` (validate checked
    their keys and values): who may reply, on every item; the quoted post, on the first."""
    body: dict[str, Any] = {}
    if "reply_settings" in options:
        body["reply_settings"] = options["reply_settings"]
    if "quote_tweet_id" in options and index == 0:
        body["quote_tweet_id"] = options["quote_tweet_id"]
    return body


def _post_limit(connection: Connection) -> int:
    """280, or the connection's ``metadata.max_chars`` (long posts), at most 25,000."""
    value = connection.metadata.get("max_chars")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return min(value, LONG_POST_MAX)
    return 280


class XAdapter(Adapter):
    # validate() runs before the connection is known: the longest any account may post.
    # prepare() checks the connection's own limit (_post_limit) before any call.
    # Pacing: POST /2/tweets allows 100 requests per 15 min per user and 10,000 per 24 h per
    # app (x-rate-limit-*, x-app-limit-24hour-* headers). 2 in flight per user; 100 per app:
    # the app's daily quota is shared by every tenant, so a burst may not take it at once
    # (a 429 waits for x-rate-limit-reset).
    facts = PlatformFacts(
        "x", "X", api_base="https://api.x.com/2", concurrency=(100, 2),
        text=(TextLimit(LONG_POST_MAX, weighted_length, _UNIT),),
        media=MediaLimit(4, video=VIDEO, alt_text=True, alt_text_max=ALT_TEXT_MAX),
        thread=THREAD_MAX, first_comment=TextLimit(LONG_POST_MAX, weighted_length, _UNIT),
        options=OPTIONS,
    )

    def validate_item(self, item: PostItem, what: str) -> None:
        super().validate_item(item, what)
        check_one_video(self.facts.display, item.media, what)
        gifs = [m for m in item.media if (m.mime or "") == "image/gif"]
        if gifs and len(item.media) > 1:  # "up to 4 photos, 1 animated GIF or 1 video in a Post"
            raise ContentRejectedError(f"X takes an animated GIF alone in a post; {what} has {len(item.media)} media")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        limit, items = _post_limit(connection), post.items
        for index, item in enumerate(items):
            check_length(self.facts.display, weighted_length(item.content), limit, _UNIT, describe(index, len(items)))
        if post.first_comment:
            check_length(self.facts.display, weighted_length(post.first_comment), limit, _UNIT, "the first comment")
        holder = await self._holder(connection, ctx)
        if not any(item.media for item in items):
            return {}
        media: list[list[str]] = []
        expiries: list[float] = []
        for index, item in enumerate(items):
            what = describe(index, len(items))
            media.append([await self._upload(holder, ctx, m, i, what, expiries) for i, m in enumerate(item.media)])
        return {"media": media, "expires_at": min(expiries)} if expiries else {"media": media}

    async def _holder(self, connection: Connection, ctx: PublishContext) -> TokenHolder:
        refresher = self._refresher() if connection.refresh_token else None
        margin = self.settings.token_refresh_margin_seconds
        return await TokenHolder.fresh(self.name, connection, ctx, refresher, margin)

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        body: dict[str, Any] = {"text": item.content, **_options(post.options, item.index)}
        if media_ids := item_media(prepared, item.index):
            expires = prepared.get("expires_at")
            if isinstance(expires, (int, float)) and time.time() > expires - EXPIRY_MARGIN_SECONDS:
                raise PreparedStaleError("X media ids lapse before they could be used: uploading them again")
            body["media"] = {"media_ids": media_ids}
        if item.reply_to is not None:  # a thread: each item answers the one before it
            body["reply"] = {"in_reply_to_tweet_id": item.reply_to.parent.platform_post_id}
        return await self._tweet(connection, ctx, body, "X post")

    async def comment(
        self, post: Post, on: PublishResult, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        """X has no comments: the first comment is the author's own reply to the post."""
        body = {"text": post.first_comment or "", "reply": {"in_reply_to_tweet_id": on.platform_post_id}}
        return await self._tweet(connection, ctx, body, "X first comment")

    async def _tweet(
        self, connection: Connection, ctx: PublishContext, body: dict[str, Any], what: str
    ) -> PublishResult:
        holder = await self._holder(connection, ctx)
        response = await call(
            self.client, holder, lambda: self._request(holder, "POST", "tweets", json=body), classify,
            what=what, creates=True,
        )
        tweet_id = require_id(json_object(response), "data", "id", what=what)
        username = holder.connection.metadata.get("username")
        path = f"{username}/status" if isinstance(username, str) and username else "i/web/status"
        return PublishResult(tweet_id, f"https://x.com/{path}/{tweet_id}")

    def _request(self, holder: TokenHolder, method: str, path: str, **kwargs: Any) -> httpx.Request:
        headers = {"authorization": f"Bearer {holder.token}"}
        return self.client.build_request(method, f"{self.base}/{path}", headers=headers, **kwargs)

    async def _send(self, holder: TokenHolder, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """One media request (never a create: a lost answer is retried with the attempt)."""
        response = await call(
            self.client, holder, lambda: self._request(holder, method, path, **kwargs), classify, what=what
        )
        return json_object(response)

    async def _upload(
        self, holder: TokenHolder, ctx: PublishContext, item: MediaItem, index: int, what: str, expiries: list[float]
    ) -> str:
        if is_video(item):
            return await self._upload_video(holder, ctx, item, what, expiries)
        gif = (item.mime or "") == "image/gif"
        content, mime = await ctx.media_bytes(item, GIF_BYTES if gif else IMAGE_BYTES)
        category = "tweet_gif" if mime == "image/gif" else "tweet_image"
        files = {"media": (filename(item, mime, index), content, mime)}
        data = await self._send(
            holder, "POST", "media/upload", "X media upload", files=files, data={"media_category": category}
        )
        media_id = _media_id(data, "X media upload", expiries)
        if isinstance(data.get("data"), dict) and data["data"].get("processing_info"):
            await self._wait_processed(holder, media_id, "image")
        if item.alt:  # images and GIFs take alt text; X's media metadata has none for video
            metadata = {"id": media_id, "metadata": {"alt_text": {"text": item.alt}}}
            await self._send(holder, "POST", "media/metadata", "X alt text", json=metadata)
        return media_id

    async def _upload_video(
        self, holder: TokenHolder, ctx: PublishContext, item: MediaItem, what: str, expiries: list[float]
    ) -> str:
        """The chunked upload: initialize, append each segment (streamed from the spool),
        finalize, then wait for processing_info to say succeeded."""
        async with checked_video(ctx, self.facts.display, VIDEO, item, what) as file:
            container = file.video.container if file.video else "mp4"
            init = {
                "media_type": "video/quicktime" if container == "mov" else "video/mp4",
                "total_bytes": file.size, "media_category": "tweet_video",
            }
            media_id = _media_id(await self._send(holder, "POST", "media/upload/initialize", "X video upload",
                                                  json=init), "X video upload", expiries)
            for segment, start in enumerate(range(0, file.size, SEGMENT_BYTES)):
                chunk = await file.read(start, SEGMENT_BYTES)
                await self._send(
                    holder, "POST", f"media/upload/{media_id}/append", "X video upload",
                    files={"media": ("segment", chunk, "application/octet-stream")},
                    data={"segment_index": str(segment)},
                )
        done = await self._send(holder, "POST", f"media/upload/{media_id}/finalize", "X video upload")
        if text_field(done, "data", "processing_info", "state") not in (None, "succeeded"):
            await self._wait_processed(holder, media_id, "video")
        return media_id

    async def _wait_processed(self, holder: TokenHolder, media_id: str, kind: str) -> None:
        params = {"command": "STATUS", "media_id": media_id}

        async def done() -> bool:
            data = await self._send(holder, "GET", "media/upload", "X media status", params=params)
            state = text_field(data, "data", "processing_info", "state")
            if state == "failed":
                reason = text_field(data, "data", "processing_info", "error", "message")
                why = f": {excerpt(reason)}" if reason else ""
                raise ContentRejectedError(f"X could not process the {kind}{why}")
            return state in (None, "succeeded")

        await poll(
            done, interval=self.settings.media_poll_interval_seconds,
            timeout=self.settings.media_poll_timeout_seconds, what="X media",
        )

    def _refresher(self) -> Refresher:
        credentials = self.settings.client("x")

        async def refresh(connection: Connection) -> TokenSet:
            if not credentials.client_id:
                raise PlatformConfigError("X token refresh needs SCHEDULER_X_CLIENT_ID")
            form = {
                "grant_type": "refresh_token",
                "refresh_token": connection.refresh_token or "",
                "client_id": credentials.client_id,
            }
            headers = {}
            if credentials.client_secret:  # a confidential client authenticates with Basic
                pair = f"{credentials.client_id}:{credentials.client_secret}".encode()
                headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
            request = self.client.build_request("POST", f"{self.base}/oauth2/token", data=form, headers=headers)
            response = await send(self.client, request, what="X token refresh")
            return refreshed_tokens(response, platform=self.name, classify=classify)

        return refresh
