"""Bluesky (AT Protocol) through the account's PDS.

Connection row: ``access_token`` = the session's ``accessJwt``; ``refresh_token`` = its
``refreshJwt`` (both from the app's ``createSession`` at connect time; the daemon never
logs in, so the 30-per-5-minutes ``createSession`` limit is never touched);
``metadata.did`` (or ``account_id``) = the account DID; ``metadata.handle`` for the
public URL; ``metadata.pds_url`` when the PDS is not the entryway.

Sessions are cached in memory per connection: the adapter keeps the newest token pair it
obtained, so a stale row snapshot does not cause another refresh. The access JWT is
refreshed with ``com.atproto.server.refreshSession`` through the daemon (row lock, new
pair stored atomically: the refresh JWT rotates) when it expires within the margin or
after a first ``ExpiredToken``.

Flow: images → ``com.atproto.repo.uploadBlob`` (raw bytes) and an
``app.bsky.embed.images`` embed; links become facets with UTF-8 byte offsets; the record
is written with ``com.atproto.repo.putRecord`` under a record key fixed per post.

Settings: ``SCHEDULER_BLUESKY_API_BASE`` (default ``https://bsky.social``), token refresh
margin. Exactly-once: the record key (a TID derived from the post id and its scheduled
instant) and ``createdAt`` are checkpointed before the write; rewriting the same record
under the same key is a no-op, so a lost answer is safe to retry.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import httpx

from ..config.platforms import PlatformSettings
from ..errors import (
    AuthError,
    ContentRejectedError,
    OutcomeUnknownError,
    PlatformConfigError,
    PublishError,
    RefreshableAuthError,
    TransientError,
)
from ..models import Connection, MediaItem, Post, PublishResult, Refresher, TokenSet
from ._calls import call, json_object, preparing, rate_limited, require_id, seconds_until_epoch, text_field
from ._tokens import TokenHolder, reconnect
from .base import Adapter, MediaLimit, PlatformFacts, PublishContext, TextLimit
from .http import body_excerpt, retry_after, send
from .text import find_urls, graphemes, utf8_offset

IMAGE_BYTES = 2_000_000  # app.bsky.embed.images lexicon
_S32 = "234567abcdefghijklmnopqrstuvwxyz"
_AUTH_ERRORS = frozenset({"InvalidToken", "AuthMissing", "AuthRequired", "AccountTakedown", "AccountDeactivated"})


def _utf8_bytes(text: str) -> int:
    return len(text.encode())


def _s32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(_S32[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def record_key(post_id: uuid.UUID, scheduled_at: dt.datetime) -> str:
    """A TID fixed by the post: its scheduled instant in µs plus up to 1 s from the id."""
    micros = int(scheduled_at.timestamp() * 1_000_000) + post_id.int % 1_000_000
    clock_id = (post_id.int >> 20) % 1024
    return _s32(micros & ((1 << 53) - 1), 11) + _s32(clock_id, 2)


def created_at(scheduled_at: dt.datetime) -> str:
    return scheduled_at.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jwt_expiry(token: str | None) -> dt.datetime | None:
    """The ``exp`` of a JWT (not verified: only to refresh in time)."""
    try:
        payload = (token or "").split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = data.get("exp") if isinstance(data, dict) else None
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return None
    return dt.datetime.fromtimestamp(exp, dt.timezone.utc)


def facets(text: str) -> list[dict[str, Any]]:
    return [
        {
            "index": {"byteStart": utf8_offset(text, span.start), "byteEnd": utf8_offset(text, span.end)},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": span.uri}],
        }
        for span in find_urls(text)
    ]


def classify(response: httpx.Response) -> PublishError | None:
    if response.is_success:
        return None
    data = json_object(response)
    error, message = str(data.get("error") or ""), str(data.get("message") or body_excerpt(response))[:300]
    status = response.status_code
    if error == "ExpiredToken":
        return RefreshableAuthError(f"Bluesky session expired ({message}): reconnect bluesky")
    if error in _AUTH_ERRORS or status == 401:
        return reconnect("bluesky", f"{error or 'HTTP 401'}: {message}")
    if status == 429:
        return rate_limited("bluesky", response, seconds_until_epoch(response.headers.get("ratelimit-reset")), message)
    if status >= 500:
        return TransientError(f"Bluesky server error (HTTP {status}{', ' + error if error else ''})", retry_after(response))
    if status == 403:
        return reconnect("bluesky", f"{error or 'HTTP 403'}: {message}")
    return ContentRejectedError(f"Bluesky rejected the post: {message}")


class BlueskyAdapter(Adapter):
    facts = PlatformFacts(
        "bluesky", "Bluesky", idempotent=True, api_base="https://bsky.social", concurrency=(10, 2),
        text=(TextLimit(300, graphemes), TextLimit(3_000, _utf8_bytes, "bytes of text")), media=MediaLimit(4),
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.default_pds = self.base
        # connection id → (the row's access token it came from, the newest session)
        self._sessions: dict[uuid.UUID, tuple[str | None, Connection]] = {}

    async def publish(self, post: Post, connection: Connection, ctx: PublishContext) -> PublishResult:
        self.validate(post)
        did = _did(connection)
        pds = str(connection.metadata.get("pds_url") or self.default_pds).rstrip("/")
        holder = TokenHolder(self.name, self._cached(connection), ctx, self._refresher(pds))
        try:
            return await self._publish(post, did, pds, holder, ctx)
        finally:
            self._sessions[connection.id] = (connection.access_token, holder.connection)

    async def _publish(
        self, post: Post, did: str, pds: str, holder: TokenHolder, ctx: PublishContext
    ) -> PublishResult:
        await holder.ensure_fresh(self.settings.token_refresh_margin_seconds)
        rkey, created = await _fixed_key(post, ctx)
        record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": post.content, "createdAt": created}
        if links := facets(post.content):
            record["facets"] = links
        if post.media:
            images = [await preparing(self._upload(holder, ctx, pds, item)) for item in post.media]
            record["embed"] = {"$type": "app.bsky.embed.images", "images": images}
        body = {"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": record}
        try:
            response = await call(
                self.client, holder, lambda: self._request(holder, pds, "com.atproto.repo.putRecord", json=body),
                classify, what="Bluesky post",
            )
        except OutcomeUnknownError as exc:
            raise TransientError(f"{exc}; safe to retry: the record key is fixed") from exc
        uri = require_id(json_object(response), "uri", what="Bluesky post")
        handle = holder.connection.metadata.get("handle")
        profile = handle if isinstance(handle, str) and handle else did
        return PublishResult(uri, f"https://bsky.app/profile/{profile}/post/{uri.rsplit('/', 1)[-1]}")

    def _request(self, holder: TokenHolder, pds: str, method: str, **kwargs: Any) -> httpx.Request:
        headers = {"authorization": f"Bearer {holder.token}", **kwargs.pop("headers", {})}
        return self.client.build_request("POST", f"{pds}/xrpc/{method}", headers=headers, **kwargs)

    async def _upload(self, holder: TokenHolder, ctx: PublishContext, pds: str, item: MediaItem) -> dict[str, Any]:
        content, mime = await ctx.media_bytes(item, IMAGE_BYTES)
        response = await call(
            self.client, holder,
            lambda: self._request(
                holder, pds, "com.atproto.repo.uploadBlob", content=content, headers={"content-type": mime}
            ),
            classify, what="Bluesky image upload",
        )
        blob = json_object(response).get("blob")
        if not isinstance(blob, dict):
            raise TransientError("Bluesky image upload: no blob in the answer")
        return {"alt": item.alt or "", "image": blob}

    def _cached(self, connection: Connection) -> Connection:
        """The newest session we hold for this row, unless the row changed since (a reconnect)."""
        entry = self._sessions.get(connection.id)
        if entry is not None and connection.access_token in (entry[0], entry[1].access_token):
            return entry[1]
        if connection.token_expires_at is None:
            return dataclasses.replace(connection, token_expires_at=jwt_expiry(connection.access_token))
        return connection

    def _refresher(self, pds: str) -> Refresher:
        async def refresh(connection: Connection) -> TokenSet:
            if not connection.refresh_token:
                raise reconnect(self.name, "the connection has no refresh token")
            request = self.client.build_request(
                "POST", f"{pds}/xrpc/com.atproto.server.refreshSession",
                headers={"authorization": f"Bearer {connection.refresh_token}"},
            )
            response = await send(self.client, request, what="Bluesky session refresh")
            error = classify(response)
            if isinstance(error, AuthError):
                raise reconnect(self.name, "the session could not be refreshed")
            if error is not None:
                raise error
            data = json_object(response)
            access, refresh_jwt = text_field(data, "accessJwt"), text_field(data, "refreshJwt")
            if not access:
                raise reconnect(self.name, "the session refresh answered without a token")
            return TokenSet(access_token=access, refresh_token=refresh_jwt, expires_at=jwt_expiry(access))

        return refresh


def _did(connection: Connection) -> str:
    did = connection.metadata.get("did") or connection.account_id
    if not isinstance(did, str) or not did.startswith("did:"):
        raise PlatformConfigError("the bluesky connection needs metadata.did (or account_id) set to the account DID")
    return did


async def _fixed_key(post: Post, ctx: PublishContext) -> tuple[str, str]:
    """The record key and createdAt of this post, chosen once and checkpointed."""
    rkey, created = post.publish_state.get("rkey"), post.publish_state.get("created_at")
    if isinstance(rkey, str) and rkey and isinstance(created, str) and created:
        return rkey, created
    rkey, created = record_key(post.id, post.scheduled_at), created_at(post.scheduled_at)
    await ctx.checkpoint(rkey=rkey, created_at=created)
    return rkey, created
