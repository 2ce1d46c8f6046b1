"""Slack ``chat.postMessage`` (+ external file upload for images).

Connection row: ``access_token`` = a bot token (``xoxb-…``, ``chat:write`` and
``files:write`` for images); ``metadata.channel`` (or ``account_id``) = the channel id;
``refresh_token`` + ``token_expires_at`` when token rotation is on (12-hour tokens
refreshed through ``oauth.v2.access`` before expiry or after a first ``token_expired``;
needs ``SCHEDULER_SLACK_CLIENT_ID`` and ``SCHEDULER_SLACK_CLIENT_SECRET``; each refresh
rotates the refresh token, stored atomically).

Flow: text → ``chat.postMessage``; files → (``prepare``, for every item of a thread)
``files.getUploadURLExternal`` (with the image's alt text as ``alt_txt``, Slack's
screen-reader text, at most 1,000 characters) and a POST of the bytes to the
``upload_url`` (an image read whole; any other file, a video, streamed from a spooled file,
refused past Slack's 1 GB before any call), keeping the file ids; (``publish``)
``files.completeUploadExternal`` with the text as ``initial_comment``. Threads: each item
after the first is a reply in the first one's thread (``thread_ts`` = its ``ts``), up to 25.
``platform_options``: ``unfurl_links``, ``unfurl_media``, ``reply_broadcast`` (text
replies also shown in the channel). Slack
reads ``& < >`` in message text as its own markup, so they are sent as ``&amp; &lt; &gt;``
and show as written. The public URL comes from
``chat.getPermalink``. Slack answers errors as HTTP 200 ``ok:false`` + ``error``.

Settings: ``SCHEDULER_SLACK_API_BASE`` (default ``https://slack.com/api``), client id and
secret, token refresh margin. Exactly-once: none offered. On the calls that post
(``chat.postMessage``, ``files.completeUploadExternal``) only HTTP 429 or
``ratelimited`` (the limiter refused the call), ``request_timeout`` ("the POST data was
either missing or truncated": Slack did not get the request) and the permanent errors
prove that nothing was posted. An HTTP 5xx, ``service_unavailable``, a timeout or a reset
is an unknown outcome (``_http.on_create``), and so are ``internal_error`` and
``fatal_error`` anywhere ("it's possible some aspect of the operation succeeded"):
reported, never retried. The upload steps are retried freely.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from ..errors import (
    ContentRejectedError,
    NotCreatedError,
    OutcomeUnknownError,
    PlatformConfigError,
    PublishError,
    RateLimitedError,
    TransientError,
)
from ..models import Connection, MediaItem, Post, PublishResult, Refresher, TokenSet
from ._calls import best_effort, filename, json_object, text_field
from ._http import call, retry_after, send
from ._tokens import TokenHolder, oauth_reason, oauth_token_set, reconnect, refresh_grant
from ._video import spooled
from .base import (
    UNLIMITED,
    Adapter,
    Item,
    MediaLimit,
    Option,
    PlatformFacts,
    Prepared,
    PublishContext,
    TextLimit,
    describe,
)

MAX_ALT_TEXT = 1_000
_TS = re.compile(r"[0-9]+\.[0-9]+")  # a message's ts: what a thread hangs on
FILE_BYTES = 1_000_000_000  # Slack's file size limit: 1 GB
THREAD_MAX = 25  # ours: Slack has no limit on a thread's replies
AUTH_ERRORS = frozenset(
    {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "missing_scope", "no_permission",
     "not_allowed_token_type", "ekm_access_denied"}
)
CONFIG_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived", "invalid_channel"})
NOT_RECEIVED_ERRORS = frozenset({"request_timeout"})  # the POST data was missing or truncated
TRANSIENT_ERRORS = frozenset({"service_unavailable"})
UNKNOWN_ERRORS = frozenset({"internal_error", "fatal_error"})


def escape(text: str) -> str:
    """Slack's three control characters as entities (``chat.postMessage`` formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def classify(response: httpx.Response) -> PublishError | None:
    status = response.status_code
    if status == 429:
        return RateLimitedError("Slack rate limit reached", retry_after(response))
    if status >= 500:
        return TransientError(f"Slack server error (HTTP {status})", retry_after(response))
    data = json_object(response)
    if response.is_success and data.get("ok") is True:
        return None
    error = str(data.get("error") or f"HTTP {status}")[:200]
    if error == "token_expired":
        return reconnect("slack", "token_expired", refreshable=True)
    if error in AUTH_ERRORS:
        return reconnect("slack", error)
    if error in CONFIG_ERRORS or error.startswith("restricted_action"):
        return PlatformConfigError(
            f"Slack cannot post to the channel ({error}): check metadata.channel and invite the app"
        )
    if error in ("rate_limited", "ratelimited"):
        return RateLimitedError("Slack rate limit reached", retry_after(response))
    if error in NOT_RECEIVED_ERRORS:
        return NotCreatedError(f"Slack did not receive the whole request ({error})")
    if error in TRANSIENT_ERRORS:
        return TransientError(f"Slack is temporarily unavailable ({error})")
    if error in UNKNOWN_ERRORS:
        return OutcomeUnknownError(f"Slack reported {error}: the message may have been posted; check the channel")
    return ContentRejectedError(f"Slack rejected the post: {error}")


OPTIONS = (
    Option("unfurl_links", "boolean", description="previews of the text's links (Slack's default: on)"),
    Option("unfurl_media", "boolean", description="previews of linked media (Slack's default: on)"),
    Option("reply_broadcast", "boolean", description="a thread's replies also shown in the channel"),
)


class SlackAdapter(Adapter):
    # Pacing: chat.postMessage allows about 1 message per second per channel (short bursts
    # tolerated) plus a workspace-wide limit; 429 with Retry-After. 1 in flight per
    # channel; no daemon-wide bound, since each workspace's limit is its own.
    facts = PlatformFacts(
        "slack", "Slack", api_base="https://slack.com/api", concurrency=(UNLIMITED, 1),
        text=(TextLimit(40_000),),
        media=MediaLimit(10, images_only=False, mixed=True, alt_text=True, alt_text_max=MAX_ALT_TEXT),
        thread=THREAD_MAX, options=OPTIONS,
    )

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        """Every item's files uploaded (shared only by ``publish``): ``files`` for the post,
        ``thread_files`` for each reply."""
        _channel(connection)
        holder = await self._holder(connection, ctx)
        uploads = [[await self._upload(holder, ctx, media, i, describe(n, len(post.items)))
                    for i, media in enumerate(item.media)] for n, item in enumerate(post.items)]
        prepared: Prepared = {"files": uploads[0]} if uploads[0] else {}
        if any(uploads[1:]):
            prepared["thread_files"] = uploads[1:]
        return prepared

    async def _holder(self, connection: Connection, ctx: PublishContext) -> TokenHolder:
        refresher = self._refresher() if connection.refresh_token else None
        margin = self.settings.token_refresh_margin_seconds
        return await TokenHolder.fresh(self.name, connection, ctx, refresher, margin)

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        channel = _channel(connection)
        holder = await self._holder(connection, ctx)
        thread = _thread(item, post.options)
        if item.media:
            files = prepared["files"] if item.index == 0 else prepared["thread_files"][item.index - 1]
            return await self._files(holder, item, files, channel, thread)
        options = {key: post.options[key] for key in ("unfurl_links", "unfurl_media") if key in post.options}
        message = {"channel": channel, "text": escape(item.content), **options, **thread}
        data = await self._api(holder, "chat.postMessage", "Slack post", creates=True, json=message)
        ts = text_field(data, "ts")
        if not ts:
            raise OutcomeUnknownError("Slack post: the answer had no ts; check the channel")
        posted_in = text_field(data, "channel") or channel
        return PublishResult(ts, await best_effort(self._permalink(holder, posted_in, ts)))

    async def _api(
        self, holder: TokenHolder, method: str, what: str, *, creates: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        def build() -> httpx.Request:
            headers = {"authorization": f"Bearer {holder.token}"}
            if "json" in kwargs:
                headers["content-type"] = "application/json; charset=utf-8"
            return self.client.build_request("POST", f"{self.base}/{method}", headers=headers, **kwargs)

        return json_object(await call(self.client, holder, build, classify, what=what, creates=creates))

    async def _permalink(self, holder: TokenHolder, channel: str, ts: str) -> str | None:
        where = {"channel": channel, "message_ts": ts}
        data = await self._api(holder, "chat.getPermalink", "Slack permalink", data=where)
        return text_field(data, "permalink")

    async def _upload(
        self, holder: TokenHolder, ctx: PublishContext, item: MediaItem, index: int, what: str
    ) -> dict[str, str]:
        """An image read whole (small); any other file (a video) streamed from a spooled file,
        up to Slack's 1 GB."""
        if item.mime and item.mime.startswith("image/"):
            content, mime = await ctx.media_bytes(item, self.settings.max_media_bytes)
            return await self._send_file(holder, item, filename(item, mime, index), len(content), mime,
                                         lambda: content)
        rule = "Slack takes files up to 1 GB"
        async with spooled(ctx, item, FILE_BYTES, rule, what) as file:
            name = filename(item, file.mime, index)
            return await self._send_file(holder, item, name, file.size, file.mime, file.chunks)

    async def _send_file(
        self, holder: TokenHolder, item: MediaItem, name: str, size: int, mime: str,
        body: Callable[[], bytes | AsyncIterator[bytes]],
    ) -> dict[str, str]:
        fields = {"filename": name, "length": str(size)}
        if item.alt:
            fields["alt_txt"] = item.alt
        data = await self._api(holder, "files.getUploadURLExternal", "Slack file upload", data=fields)
        upload_url, file_id = text_field(data, "upload_url"), text_field(data, "file_id")
        if not upload_url or not file_id:
            raise TransientError("Slack file upload: no upload_url/file_id in the answer")
        headers = {"content-type": mime, "content-length": str(size)}
        request = self.client.build_request("POST", upload_url, content=body(), headers=headers)
        response = await send(self.client, request, what="Slack file upload")
        if not response.is_success:
            error = classify(response) or ContentRejectedError(f"Slack refused the file (HTTP {response.status_code})")
            raise error
        return {"id": file_id, "title": name}

    async def _files(
        self, holder: TokenHolder, item: Item, files: list[dict[str, str]], channel: str, thread: dict[str, Any]
    ) -> PublishResult:
        form = {"files": json.dumps(files), "channel_id": channel}
        if "thread_ts" in thread:  # a file reply is never broadcast: completeUploadExternal has no such field
            form["thread_ts"] = thread["thread_ts"]
        if item.content:
            form["initial_comment"] = escape(item.content)
        data = await self._api(holder, "files.completeUploadExternal", "Slack file post", creates=True, data=form)
        ts = _shared_ts(data, channel)
        if ts:
            return PublishResult(ts, await best_effort(self._permalink(holder, channel, ts)))
        first = data.get("files")
        entry = first[0] if isinstance(first, list) and first and isinstance(first[0], dict) else {}
        return PublishResult(text_field(entry, "id") or files[0]["id"], text_field(entry, "permalink"))

    def _refresher(self) -> Refresher:
        credentials = self.settings.client("slack")

        async def refresh(connection: Connection) -> TokenSet:
            form = refresh_grant(
                credentials, connection,
                needs="Slack token rotation needs SCHEDULER_SLACK_CLIENT_ID and SCHEDULER_SLACK_CLIENT_SECRET",
            )
            request = self.client.build_request("POST", f"{self.base}/oauth.v2.access", data=form)
            response = await send(self.client, request, what="Slack token refresh")
            error = classify(response)
            if isinstance(error, (RateLimitedError, TransientError, OutcomeUnknownError)):
                raise error
            if error is not None:  # invalid_grant, invalid_refresh_token, …
                raise reconnect(self.name, f"the refresh token was refused ({oauth_reason(response)})")
            return oauth_token_set(json_object(response), platform=self.name)

        return refresh


def _channel(connection: Connection) -> str:
    channel = connection.metadata.get("channel") or connection.account_id
    if not isinstance(channel, str) or not channel:
        raise PlatformConfigError("the slack connection needs metadata.channel (the channel id)")
    return channel


def _thread(item: Item, options: Mapping[str, Any]) -> dict[str, Any]:
    """A reply's place: Slack threads hang every reply on the first message's ``ts`` ("never
    use a reply's ts value; use its parent instead")."""
    if item.reply_to is None:
        return {}
    root = item.reply_to.root.platform_post_id
    if not root or not _TS.fullmatch(root):  # a file post whose share Slack did not report has a file id
        raise ContentRejectedError(
            f"Slack: {describe(item.index, item.total)} cannot reply: Slack did not say which message the post is"
        )
    return {"thread_ts": root, **({"reply_broadcast": True} if options.get("reply_broadcast") else {})}


def _shared_ts(data: dict[str, Any], channel: str) -> str | None:
    """The message ts of the upload's share in ``channel``, when Slack already reports it."""
    files = data.get("files")
    if not isinstance(files, list) or not files or not isinstance(files[0], dict):
        return None
    shares = files[0].get("shares")
    for scope in ("public", "private"):
        scoped = shares.get(scope) if isinstance(shares, dict) else None
        entries = scoped.get(channel) if isinstance(scoped, dict) else None
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            return text_field(entries[0], "ts")
    return None
