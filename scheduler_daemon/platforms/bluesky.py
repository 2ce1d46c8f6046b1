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

Flow (1 and 2 are ``prepare``, for every item of the thread: the records, kept for
``publish``; 3 is ``publish``, once per item):

1. mentions are resolved with ``com.atproto.identity.resolveHandle`` on the account's
   PDS (all at once; a handle that does not resolve stays plain text), and the text's
   mentions, links, tags and cashtags become facets with UTF-8 byte ranges
   (``bluesky_richtext``);
2. the embed (``bluesky_embed``): images → ``com.atproto.repo.uploadBlob`` and an
   ``app.bsky.embed.images`` embed with their alt texts; a video (alone in its post) →
   checked against the lexicon's limits, streamed to Bluesky's video service and waited
   for until processed (``bluesky_video``; by ``uploadBlob`` where the service cannot take
   it), and an ``app.bsky.embed.video`` embed with its alt text and aspect ratio; a post
   without media gets a link card (``app.bsky.embed.external``) for its first link.
   ``platform_options`` ``langs`` and ``labels`` (self-labels) go on every record. What
   ``prepare`` returns (the records, with their blob refs and facets, and when it began) is
   checkpointed by the driver; a record whose blobs are older than a PDS surely keeps
   unreferenced ones (``bluesky_embed.stale``) makes its item prepared anew at the instant;
3. the record is written with ``com.atproto.repo.putRecord`` under a record key fixed
   per post and item, ``createdAt`` being the moment it is sent (feeds sort by it: a late
   post is not buried); an item after the first carries ``reply {root, parent}``, the
   strong refs (uri and cid) of the thread's first post and of the item before it.

Settings: ``SCHEDULER_BLUESKY_API_BASE`` (default ``https://bsky.social``),
``SCHEDULER_BLUESKY_VIDEO_SERVICE`` (default ``https://video.bsky.app``), token refresh
margin, media poll interval and timeout (the video's processing).

Exactly-once: the record key (a TID derived from the post id and its scheduled instant)
is checkpointed, with the ``createdAt`` sent, before the write. A resend within the
attempt (after a token refresh) is the same request, so the same record. An attempt
that finds a checkpoint (the previous one may have written: lost answer, crash) first
reads the key with ``com.atproto.repo.getRecord``: a record there is the post, kept as
it is; otherwise it is written now with a new ``createdAt``. Either way one key holds at
most one record. So ``putRecord`` is the request that creates the post: a 5xx, a timeout
or a reset there is an unknown outcome (``_http.on_create``), which the engine repeats
because the platform declares ``idempotent``.

Auth failures give one message, ``reconnect bluesky: …`` with the PDS's own reason
(e.g. "the refresh token was refused (Token has been revoked)").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..config.platforms import PlatformSettings
from ..errors import (
    AuthError,
    ContentRejectedError,
    InvalidPostError,
    NotCreatedError,
    PlatformConfigError,
    PreparedStaleError,
    PublishError,
    TransientError,
)
from ..mediafile import MediaFile
from ..models import Connection, MediaItem, Post, PostItem, PublishResult, Refresher, TokenSet
from . import bluesky_richtext as richtext
from ._calls import json_object, rate_limited, require_id, seconds_until_epoch, text_field
from ._http import body_excerpt, call, excerpt, retry_after, send
from ._rules import graphemes
from ._tokens import TokenHolder, reconnect
from ._video import check_one_video
from .base import Adapter, Item, MediaLimit, Option, PlatformFacts, Prepared, PublishContext, TextLimit, describe
from .bluesky_embed import PREPARED_AT, VIDEO, link_card, media_embed, stale
from .bluesky_video import VideoService, processed

POST = "app.bsky.feed.post"
UPLOAD = "com.atproto.repo.uploadBlob"
THREAD_MAX = 25  # Bluesky states no limit for a reply chain; ours, so one row stays reviewable
LANGS_MAX = 3  # app.bsky.feed.post: langs has at most 3
SELF_LABELS = ("sexual", "nudity", "porn", "graphic-media")  # the self-labels Bluesky's clients show
OPTIONS = (
    Option("langs", "strings", description="the post's languages, at most 3 (BCP 47)"),
    Option("labels", "strings", SELF_LABELS, "self-labels: a content warning on the post's media"),
)
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


def record_key(post_id: uuid.UUID, scheduled_at: dt.datetime, index: int = 0) -> str:
    """A TID fixed by the post (and ``index``, its item in a thread): its scheduled instant
    in µs plus up to 1 s from the id, plus the item's index (later items sort later)."""
    micros = int(scheduled_at.timestamp() * 1_000_000) + post_id.int % 1_000_000 + index
    clock_id = (post_id.int >> 20) % 1024
    return _s32(micros & ((1 << 53) - 1), 11) + _s32(clock_id, 2)


def created_at(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _reason(response: httpx.Response) -> tuple[str, str]:
    """The XRPC error name and the server's message, as excerpts (the PDS may be a tenant's)."""
    data = json_object(response)
    error = excerpt(data.get("error") or "", 60)
    message = excerpt(data.get("message") or "") or body_excerpt(response)
    return error, message or error or f"HTTP {response.status_code}"


class BlobGoneError(PreparedStaleError, NotCreatedError):
    """The PDS no longer holds a blob the record references (it drops blobs no record took
    up): the record was not written, and the item's media are uploaded again."""


def classify(response: httpx.Response) -> PublishError | None:
    if response.is_success:
        return None
    error, message = _reason(response)
    status = response.status_code
    if error == "BlobNotFound":
        return BlobGoneError(f"Bluesky no longer holds an uploaded file ({message}): uploading it again")
    if error == "ExpiredToken":
        return reconnect("bluesky", f"the session expired ({message})", refreshable=True)
    if error in _AUTH_ERRORS or status in (401, 403):
        return reconnect("bluesky", message)
    if status == 429:
        return rate_limited("bluesky", response, seconds_until_epoch(response.headers.get("ratelimit-reset")), message)
    if status >= 500:
        named = f", {error}" if error else ""
        return TransientError(f"Bluesky server error (HTTP {status}{named})", retry_after(response))
    return ContentRejectedError(f"Bluesky rejected the post: {message}")


class BlueskyAdapter(Adapter):
    # Pacing: writes are limited per account (5,000 points per hour, 35,000 per day; a
    # created record costs 3) and requests per IP (3,000 per 5 min on Bluesky's PDS: 10/s
    # from this daemon's address). 2 in flight per account, 10 across all accounts: the
    # per-IP limit is the daemon's, whatever the tenants.
    facts = PlatformFacts(
        "bluesky", "Bluesky", idempotent=True, api_base="https://bsky.social", concurrency=(10, 2),
        text=(TextLimit(300, graphemes, "graphemes"), TextLimit(3_000, _utf8_bytes, "bytes of text")),
        media=MediaLimit(4, video=VIDEO, alt_text=True), thread=THREAD_MAX, options=OPTIONS,
        dedupe_window_seconds=None,  # the record key is fixed: a repeat finds the record at any age
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.default_pds = self.base
        # connection id → (the row's access token it came from, the newest session)
        self._sessions: dict[uuid.UUID, tuple[str | None, Connection]] = {}
        self._audiences: dict[tuple[str, str], str] = {}  # (PDS, DID) → its own PDS's DID: the video token's audience

    def validate_item(self, item: PostItem, what: str) -> None:
        super().validate_item(item, what)
        check_one_video(self.facts.display, item.media, what)

    def validate(self, post: Post) -> None:
        super().validate(post)
        langs = post.options.get("langs") or []
        if len(langs) > LANGS_MAX:
            raise InvalidPostError(f"platform_options.langs takes at most {LANGS_MAX} languages; it has {len(langs)}")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        began = time.time()  # before the first blob: their age is never underestimated
        async with self._session(connection, ctx) as (did, pds, holder):
            items = post.items
            records = [
                await self._record(post, item, did, pds, holder, ctx, describe(index, len(items)))
                for index, item in enumerate(items)
            ]
        return {"records": records, PREPARED_AT: began}

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        records = prepared.get("records")
        record = dict(records[item.index] if isinstance(records, list) else prepared["record"])
        async with self._session(connection, ctx) as (did, pds, holder):
            if item.reply_to is not None:  # app.bsky.feed.post#replyRef: the thread's first post and the one before
                root, parent = item.reply_to.root, item.reply_to.parent
                record["reply"] = {"root": await self._strong_ref(pds, did, root),
                                   "parent": await self._strong_ref(pds, did, parent)}
            return await self._put(post, item, did, pds, holder, ctx, record, stale(record, prepared))

    @contextlib.asynccontextmanager
    async def _session(
        self, connection: Connection, ctx: PublishContext
    ) -> AsyncIterator[tuple[str, str, TokenHolder]]:
        """(DID, PDS, a fresh session) for the connection; the newest session is kept after."""
        did = _did(connection)
        pds = str(connection.metadata.get("pds_url") or self.default_pds).rstrip("/")
        holder = TokenHolder(self.name, self._cached(connection), ctx, self._refresher(pds))
        try:
            await holder.ensure_fresh(self.settings.token_refresh_margin_seconds)
            yield did, pds, holder
        finally:
            session = holder.connection
            if holder.refreshed:  # a refreshed pair expires when its JWT says (the row may not say it)
                expiry = jwt_expiry(session.access_token) or session.token_expires_at
                session = dataclasses.replace(session, token_expires_at=expiry)
            self._sessions[connection.id] = (connection.access_token, session)

    async def _put(
        self, post: Post, item: Item, did: str, pds: str, holder: TokenHolder, ctx: PublishContext,
        record: dict[str, Any], age: float | None,
    ) -> PublishResult:
        rkey = item.state.get("rkey")
        if isinstance(rkey, str) and rkey and (found := await self._existing(pds, did, rkey)):
            return self._result(*found, did, holder)  # an earlier attempt wrote it
        if age is not None:  # the PDS may have dropped them (bluesky_embed): prepared anew
            raise BlobGoneError(f"Bluesky: the files of {describe(item.index, item.total)} were uploaded "
                                f"{age / 60:.0f} min ago, past what a PDS keeps unused: uploading them again")
        if not (isinstance(rkey, str) and rkey):
            rkey = record_key(post.id, post.scheduled_at, item.index)
        record["createdAt"] = created_at(dt.datetime.now(dt.timezone.utc))
        await ctx.checkpoint(rkey=rkey, created_at=record["createdAt"])
        body = {"repo": did, "collection": POST, "rkey": rkey, "record": record}
        response = await call(
            self.client, holder, lambda: self._request(holder, pds, "com.atproto.repo.putRecord", json=body),
            classify, what="Bluesky post", creates=True,
        )
        data = json_object(response)
        return self._result(require_id(data, "uri", what="Bluesky post"), text_field(data, "cid"), did, holder)

    async def _record(
        self, post: Post, item: PostItem, did: str, pds: str, holder: TokenHolder, ctx: PublishContext, what: str
    ) -> dict[str, Any]:
        """An item's record but its ``createdAt`` and reply: text, facets, embed, options."""
        record: dict[str, Any] = {"$type": POST, "text": item.content}
        spans = richtext.spans(item.content)
        dids = await self._dids(pds, richtext.handles(spans))
        if facets := richtext.facets(item.content, spans, dids):
            record["facets"] = facets

        async def upload(content: bytes | MediaFile, mime: str, label: str) -> dict[str, Any]:
            return await self._blob(holder, pds, content, mime, label)

        async def video(file: MediaFile, media: MediaItem, label: str) -> dict[str, Any]:
            service = VideoService(
                self.client, self.settings.bluesky_video_service, pds, did, holder, classify, self._audiences,
                self.settings.media_poll_interval_seconds, self.settings.media_poll_timeout_seconds,
            )
            return await processed(service, file, media, label, lambda f: upload(f, "video/mp4", "Bluesky video"))

        if item.media:
            record["embed"] = await media_embed(ctx, item.media, upload, video, what)
        elif (link := richtext.first_link(spans)) and (card := await link_card(ctx, link, upload)):
            record["embed"] = card
        if langs := post.options.get("langs"):
            record["langs"] = list(langs)
        if labels := post.options.get("labels"):
            record["labels"] = {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": v} for v in labels]}
        return record

    def _result(self, uri: str, cid: str | None, did: str, holder: TokenHolder) -> PublishResult:
        handle = holder.connection.metadata.get("handle")
        profile = handle if isinstance(handle, str) and handle else did
        url = f"https://bsky.app/profile/{profile}/post/{uri.rsplit('/', 1)[-1]}"
        return PublishResult(uri, url, {"uri": uri, "cid": cid} if cid else None)

    def _request(self, holder: TokenHolder, pds: str, method: str, **kwargs: Any) -> httpx.Request:
        headers = {"authorization": f"Bearer {holder.token}", **kwargs.pop("headers", {})}
        return self.client.build_request("POST", f"{pds}/xrpc/{method}", headers=headers, **kwargs)

    async def _query(self, pds: str, method: str, params: dict[str, str]) -> dict[str, Any] | None:
        """A public read on the PDS; None when it fails in any way."""
        request = self.client.build_request("GET", f"{pds}/xrpc/{method}", params=params)
        try:
            response = await send(self.client, request, what=f"Bluesky {method}")
        except PublishError:
            return None
        return json_object(response) if response.is_success else None

    async def _existing(self, pds: str, did: str, rkey: str) -> tuple[str, str | None] | None:
        """The uri and cid of the record under ``rkey``, if there is one (unsure: None, and
        the write under the same key replaces it rather than adding one)."""
        found = await self._query(pds, "com.atproto.repo.getRecord", {"repo": did, "collection": POST, "rkey": rkey})
        uri = text_field(found, "uri") if found else None
        return (uri, text_field(found, "cid")) if found and uri else None

    async def _strong_ref(self, pds: str, did: str, result: PublishResult) -> dict[str, Any]:
        """com.atproto.repo.strongRef of a published item: its uri and cid, as checkpointed
        (``ref``), else as the PDS holds it."""
        ref = result.ref or {}
        uri, cid = ref.get("uri") or result.platform_post_id, ref.get("cid")
        if uri and not cid and (found := await self._existing(pds, did, str(uri).rsplit("/", 1)[-1])):
            uri, cid = found
        if not uri or not cid:
            raise TransientError(f"Bluesky: the post a reply answers ({uri}) could not be read; will try again")
        return {"uri": uri, "cid": cid}

    async def _dids(self, pds: str, handles: list[str]) -> dict[str, str]:
        async def resolve(handle: str) -> str | None:
            found = await self._query(pds, "com.atproto.identity.resolveHandle", {"handle": handle})
            did = text_field(found, "did") if found else None
            return did if did and did.startswith("did:") else None

        resolved = await asyncio.gather(*(resolve(h) for h in handles))
        return {h: did for h, did in zip(handles, resolved, strict=True) if did}

    async def _blob(
        self, holder: TokenHolder, pds: str, content: bytes | MediaFile, mime: str, what: str
    ) -> dict[str, Any]:
        """``uploadBlob``: bytes, or a spooled file streamed in chunks (never read whole)."""

        def build() -> httpx.Request:
            if isinstance(content, bytes):
                return self._request(holder, pds, UPLOAD, content=content, headers={"content-type": mime})
            headers = {"content-type": mime, "content-length": str(content.size)}
            return self._request(holder, pds, UPLOAD, content=content.chunks(), headers=headers)

        response = await call(self.client, holder, build, classify, what=what)
        blob = json_object(response).get("blob")
        if not isinstance(blob, dict):
            raise TransientError(f"{what}: no blob in the answer")
        return blob

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
                raise reconnect(self.name, f"the refresh token was refused ({_reason(response)[1]})")
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
