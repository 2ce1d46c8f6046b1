"""X (Twitter) API v2.

Connection row: ``access_token`` = an OAuth 2.0 user token (2 hours) with
``tweet.write users.read tweet.read media.write offline.access``; ``refresh_token`` = the
rotating refresh token (each refresh returns a new one, stored atomically through the
daemon); ``token_expires_at`` drives the refresh (before expiry within the margin, or
after a first 401); ``account_id`` = the user id (informational); ``metadata.username``
gives the public URL ``https://x.com/{username}/status/{id}`` (else ``/i/web/status``);
``metadata.max_chars`` = the account's post limit when it may post long (X Premium, up
to 25,000 weighted characters; 280 otherwise).

Flow: ``prepare``: images → ``POST /2/media/upload`` (multipart ``media`` +
``media_category``; polls ``processing_info`` when present), keeping the media ids;
``publish``: ``POST /2/tweets`` ``{text, media.media_ids}``.
Text: 280 weighted characters by twitter-text v3 (``twitter_text.weighted_length``: URL =
23, emoji = 2, CJK = 2); at most 4 images. A 429 whose problem type is ``usage-capped``
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
from typing import Any

import httpx

from ..errors import ContentRejectedError, PlatformConfigError, PublishError, TransientError
from ..models import Connection, MediaItem, Post, PublishResult, Refresher, TokenSet
from ._calls import filename, json_object, poll, rate_limited, require_id, seconds_until_epoch, text_field
from ._http import body_excerpt, call, retry_after, send
from ._rules import check_length
from ._tokens import TokenHolder, oauth_reason, oauth_token_set, reconnect
from .base import Adapter, Item, MediaLimit, PlatformFacts, Prepared, PublishContext, TextLimit
from .twitter_text import weighted_length

LONG_POST_MAX = 25_000  # X Premium's long posts
_UNIT = "weighted characters (a URL counts 23)"
IMAGE_BYTES = 5 * 1024 * 1024
GIF_BYTES = 15 * 1024 * 1024
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
        text=(TextLimit(LONG_POST_MAX, weighted_length, _UNIT),), media=MediaLimit(4),
    )

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        check_length(self.facts.display, weighted_length(post.content), _post_limit(connection), _UNIT)
        holder = await self._holder(connection, ctx)
        if not post.media:
            return {}
        return {"media_ids": [await self._upload(holder, ctx, item, i) for i, item in enumerate(post.media)]}

    async def _holder(self, connection: Connection, ctx: PublishContext) -> TokenHolder:
        refresher = self._refresher() if connection.refresh_token else None
        margin = self.settings.token_refresh_margin_seconds
        return await TokenHolder.fresh(self.name, connection, ctx, refresher, margin)

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        holder = await self._holder(connection, ctx)
        media_ids: list[str] = prepared.get("media_ids", [])
        body: dict[str, Any] = {"text": item.content}
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        response = await call(
            self.client, holder, lambda: self._request(holder, "POST", "tweets", json=body), classify,
            what="X post", creates=True,
        )
        tweet_id = require_id(json_object(response), "data", "id", what="X post")
        username = holder.connection.metadata.get("username")
        path = f"{username}/status" if isinstance(username, str) and username else "i/web/status"
        return PublishResult(tweet_id, f"https://x.com/{path}/{tweet_id}")

    def _request(self, holder: TokenHolder, method: str, path: str, **kwargs: Any) -> httpx.Request:
        headers = {"authorization": f"Bearer {holder.token}"}
        return self.client.build_request(method, f"{self.base}/{path}", headers=headers, **kwargs)

    async def _upload(self, holder: TokenHolder, ctx: PublishContext, item: MediaItem, index: int) -> str:
        gif = (item.mime or "") == "image/gif"
        content, mime = await ctx.media_bytes(item, GIF_BYTES if gif else IMAGE_BYTES)
        category = "tweet_gif" if mime == "image/gif" else "tweet_image"
        files = {"media": (filename(item, mime, index), content, mime)}
        response = await call(
            self.client, holder,
            lambda: self._request(holder, "POST", "media/upload", files=files, data={"media_category": category}),
            classify, what="X media upload",
        )
        data = json_object(response)
        media_id = text_field(data, "data", "id")
        if not media_id:
            raise TransientError("X media upload: no media id in the answer")
        if isinstance(data.get("data"), dict) and data["data"].get("processing_info"):
            await self._wait_processed(holder, media_id)
        return media_id

    async def _wait_processed(self, holder: TokenHolder, media_id: str) -> None:
        params = {"command": "STATUS", "media_id": media_id}

        async def done() -> bool:
            response = await call(
                self.client, holder, lambda: self._request(holder, "GET", "media/upload", params=params),
                classify, what="X media status",
            )
            state = text_field(json_object(response), "data", "processing_info", "state")
            if state == "failed":
                raise ContentRejectedError("X could not process the image")
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
            if response.status_code in (400, 401):
                raise reconnect(self.name, f"the refresh token was refused ({oauth_reason(response)})")
            error = classify(response)
            if error is not None:
                raise error
            return oauth_token_set(json_object(response), platform=self.name)

        return refresh
