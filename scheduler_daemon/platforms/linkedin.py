r"""LinkedIn Posts API (+ Images and Videos APIs, + Comments API for a first comment).

Connection row: ``account_id`` = the member id (``urn:li:person:{id}`` is built) or a full
author URN (``urn:li:person:…`` / ``urn:li:organization:…``); ``metadata.author_urn``
overrides both; ``access_token`` = a 60-day token with ``w_member_social`` (or
``w_organization_social``); ``refresh_token`` only for approved partners: then the token
is refreshed when it expires within the long-lived margin or after a first 401
``EXPIRED_ACCESS_TOKEN`` (needs ``SCHEDULER_LINKEDIN_CLIENT_ID`` and ``_CLIENT_SECRET``).

Flow: ``prepare``: images or one video uploaded until ``AVAILABLE`` (``linkedin_media``:
the image or video URNs, with each one's ``altText``, are what it keeps); ``publish``:
``POST /rest/posts`` (201, id in ``x-restli-id``) with ``content.media`` (one image or the
video) or ``content.multiImage`` (2–20 images); ``comment``: ``POST
/rest/socialActions/{post URN}/comments`` ``{actor, object, message.text}`` (201, the
comment URN in ``x-restli-id``), at most 1,250 characters. A video goes alone: LinkedIn
mixes no images with it. ``platform_options``: ``visibility`` (``PUBLIC`` by default,
``CONNECTIONS``, ``LOGGED_IN``), ``disable_reshare``. LinkedIn has no threads.
Commentary is "little text": LinkedIn reads ``\ | { } @ [ ] ( ) < > # * _ ~`` as markup
and may cut the text at one left bare, so ``commentary`` escapes them, except in URLs
(``_rules.find_urls``: an escaped URL no longer links) and in hashtags, which are sent as
LinkedIn's hashtag template ``{hashtag|\#|tag}`` (a bare or escaped ``#tag`` is no
hashtag).

Settings: ``SCHEDULER_LINKEDIN_API_BASE`` (default ``https://api.linkedin.com/rest``),
``SCHEDULER_LINKEDIN_OAUTH_API_BASE`` (default ``https://www.linkedin.com/oauth/v2``),
``SCHEDULER_LINKEDIN_VERSION``.

Exactly-once: LinkedIn offers no idempotency. On ``POST /rest/posts`` only a 429 (the
throttle refused the call), a refused connection and the permanent errors prove that
nothing was posted; a 5xx, a timeout or a reset is an unknown outcome, reported and never
retried (``_http.on_create``). Uploads are retried freely.

LinkedIn refuses a text it already has with 422 ``DUPLICATE_POST`` naming the existing
URN. That is this post's success only if an earlier attempt of it may have created it, so
the attempt records in ``publish_state`` that a send is under way (``create_sent_at``,
committed before the first create call, removed again when the answer proves nothing was
created). An attempt that finds it (an earlier outcome was unknown: a lost answer, a
crash after the send) takes ``DUPLICATE_POST`` as the success with the URN LinkedIn names;
an attempt that does not (the first, or one after a 429) reports it as a content
rejection with LinkedIn's message: a deliberate repeat of last week's text is not
recorded as published with a link to last week's post. A user's reschedule starts a fresh
series (the trigger clears ``publish_state``), so a repeat after it is a rejection too,
whose message names the existing post.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from typing import Any

import httpx
import regex

from ..config.platforms import PlatformSettings
from ..errors import (
    ContentRejectedError,
    OutcomeUnknownError,
    PlatformConfigError,
    PublishError,
    RetryablePublishError,
    TransientError,
)
from ..models import Connection, Post, PostItem, PublishResult, Refresher, TokenSet
from ._calls import json_object, rate_limited, text_field
from ._http import body_excerpt, call, retry_after, send
from ._rules import find_urls
from ._tokens import TokenHolder, reconnect, refresh_grant, refreshed_tokens
from ._video import is_video
from .base import Adapter, Item, MediaLimit, Option, PlatformFacts, Prepared, PublishContext, TextLimit
from .linkedin_media import VIDEO, LinkedInMedia

_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
_HASHTAG = regex.compile(r"(?<![\w#&])#([\p{L}\p{M}\p{N}_]+)")
_URN = re.compile(r"urn:li:(?:share|ugcPost|activity):[0-9]+")
MAX_ALT_TEXT = 4_086  # the Images API's altText
MAX_COMMENT = 1_250  # LinkedIn's comment limit (its Help Center); the Comments API states none
SENT = "create_sent_at"  # publish_state: a create call went out and its outcome is not known


def escape(text: str) -> str:
    """LinkedIn "little text": every reserved character backslash-escaped."""
    return _RESERVED.sub(r"\\\1", text)


def commentary(text: str) -> str:
    """``text`` as little text: URLs intact, ``#tag`` as a hashtag template, the rest escaped."""
    parts: list[str] = []
    last = 0
    for span in find_urls(text):
        parts.append(_with_hashtags(text[last : span.start]))
        parts.append(span.url)
        last = span.end
    parts.append(_with_hashtags(text[last:]))
    return "".join(parts)


def _with_hashtags(piece: str) -> str:
    parts: list[str] = []
    last = 0
    for tag in _HASHTAG.finditer(piece):
        parts.append(escape(piece[last : tag.start()]))
        parts.append(f"{{hashtag|\\#|{escape(tag.group(1))}}}")
        last = tag.end()
    parts.append(escape(piece[last:]))
    return "".join(parts)


class DuplicatePost(ContentRejectedError):
    """422 ``DUPLICATE_POST``: LinkedIn already has this text, as ``urn`` (if it says)."""

    def __init__(self, message: str, urn: str | None) -> None:
        super().__init__(message)
        self.urn = urn


def classify(response: httpx.Response) -> PublishError | None:
    if response.is_success:
        return None
    data = json_object(response)
    code = data.get("serviceErrorCode")
    message = str(data.get("message") or body_excerpt(response))[:300]
    status = response.status_code
    if status == 422 and "DUPLICATE_POST" in response.text:
        match = _URN.search(response.text)
        detail = message.rsplit("Exception: ", 1)[-1]  # without LinkedIn's Java exception name
        existing = f" ({_url(match.group(0))})" if match else ""
        return DuplicatePost(
            f"LinkedIn rejected the post as a duplicate: {detail}{existing}. It is an older post with the "
            "same text, or this post's own if an earlier attempt ended \"outcome unknown\"; "
            "change the text to post it again",
            match.group(0) if match else None,
        )
    if status == 401:
        if code == 65602 or "EXPIRED" in message.upper():
            return reconnect("linkedin", message, refreshable=True)
        return reconnect("linkedin", message)
    if status == 403:
        return reconnect("linkedin", f"permission denied: {message}; the token needs w_member_social "
                         "or w_organization_social and the member must be a Page admin")
    if status == 426:
        return PlatformConfigError(
            f"LinkedIn no longer accepts the API version (HTTP 426: {message}): update SCHEDULER_LINKEDIN_VERSION"
        )
    if status == 429:
        return rate_limited("linkedin", response, None, message)
    if status >= 500:
        return TransientError(f"LinkedIn server error (HTTP {status})", retry_after(response))
    if status == 404:
        return PlatformConfigError(
            f"LinkedIn does not know the target ({message}): check account_id / metadata.author_urn"
        )
    return ContentRejectedError(f"LinkedIn rejected the post: {message}")


OPTIONS = (
    Option("visibility", "string", ("PUBLIC", "CONNECTIONS", "LOGGED_IN"),
           "who sees the post (CONNECTIONS: a member's posts only)"),
    Option("disable_reshare", "boolean", description="others cannot reshare the post"),
)


class LinkedInAdapter(Adapter):
    # Pacing: LinkedIn documents daily limits per app and per member, reset at midnight UTC,
    # without publishing the numbers (a 429 carries no Retry-After). 1 in flight per member;
    # 50 per app, a moderate bound for a quota of unknown size (2 serialized every tenant).
    facts = PlatformFacts(
        "linkedin", "LinkedIn", api_base="https://api.linkedin.com/rest", concurrency=(50, 1),
        text=(TextLimit(3_000),),
        media=MediaLimit(20, video=VIDEO, alt_text=True, alt_text_max=MAX_ALT_TEXT),
        first_comment=TextLimit(MAX_COMMENT), options=OPTIONS,
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.oauth_base = settings.api_base("linkedin_oauth", "https://www.linkedin.com/oauth/v2")
        self.media = LinkedInMedia(client, settings, self.base, self._request, classify)

    def validate_item(self, item: PostItem, what: str) -> None:
        super().validate_item(item, what)
        if any(is_video(media) for media in item.media) and len(item.media) > 1:
            raise ContentRejectedError(
                f"LinkedIn takes one video per post, alone; {what} has {len(item.media)} media"
            )

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        """Images (``multiImage`` from two on) or one video, uploaded and AVAILABLE."""
        author = _author(connection)
        holder = await self._holder(connection, ctx)
        if not post.media:
            return {}
        if is_video(post.media[0]):
            source = f"{connection.id}:{post.media[0].url or post.media[0].storage_path}"
            return {"video": await self.media.video(holder, ctx, author, post.media[0], source)}
        return {"images": [await self.media.image(holder, ctx, author, item) for item in post.media]}

    async def _holder(self, connection: Connection, ctx: PublishContext) -> TokenHolder:
        refresher = self._refresher() if connection.refresh_token else None
        margin = self.settings.long_lived_refresh_margin_seconds
        return await TokenHolder.fresh(self.name, connection, ctx, refresher, margin)

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        author = _author(connection)
        holder = await self._holder(connection, ctx)
        images: list[dict[str, str]] = prepared.get("images", [])
        body: dict[str, Any] = {
            "author": author,
            "commentary": commentary(item.content),
            "visibility": post.options.get("visibility", "PUBLIC"),
            "distribution": {
                "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": bool(post.options.get("disable_reshare", False)),
        }
        video: dict[str, str] | None = prepared.get("video")
        if video:
            body["content"] = {"media": video}
        elif len(images) == 1:
            body["content"] = {"media": images[0]}
        elif images:
            body["content"] = {"multiImage": {"images": images}}
        return await self._create(holder, ctx, body, sent_before=bool(item.state.get(SENT)))

    async def _create(
        self, holder: TokenHolder, ctx: PublishContext, body: dict[str, Any], *, sent_before: bool
    ) -> PublishResult:
        """``POST /rest/posts``, with the send recorded first (see the module docstring);
        ``sent_before``: an earlier attempt sent it and did not learn what happened."""
        if not sent_before:
            await ctx.checkpoint(**{SENT: dt.datetime.now(dt.timezone.utc).isoformat()})
        try:
            response = await call(
                self.client, holder, lambda: self._request(holder, "POST", f"{self.base}/posts", json=body),
                classify, what="LinkedIn post", creates=True,
            )
        except DuplicatePost as duplicate:
            if not sent_before:
                raise
            if duplicate.urn is None:
                raise OutcomeUnknownError(
                    f"{duplicate}; LinkedIn named no post, so the earlier attempt's post cannot be linked"
                ) from duplicate
            return _published(duplicate.urn)
        except RetryablePublishError:
            if not sent_before:  # nothing was created: the next attempt is a first send again
                await ctx.checkpoint(**{SENT: None})
            raise
        urn = response.headers.get("x-restli-id") or text_field(json_object(response), "id")
        return _published(urn) if urn else PublishResult(None, None)

    async def comment(
        self, post: Post, on: PublishResult, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        """``POST /rest/socialActions/{post URN}/comments`` as the post's author."""
        urn = on.platform_post_id
        if not urn:
            raise OutcomeUnknownError("LinkedIn comment: the post's URN is not known")
        holder = await self._holder(connection, ctx)
        body = {"actor": _author(connection), "object": urn, "message": {"text": post.first_comment or ""}}
        url = f"{self.base}/socialActions/{urllib.parse.quote(urn, safe='')}/comments"
        response = await call(
            self.client, holder, lambda: self._request(holder, "POST", url, json=body), classify,
            what="LinkedIn comment", creates=True,
        )
        comment = response.headers.get("x-restli-id") or text_field(json_object(response), "$URN")
        if not comment:
            return PublishResult(None, _url(urn))
        return PublishResult(comment, f"{_url(urn)}?commentUrn={urllib.parse.quote(comment, safe='')}")

    def _request(self, holder: TokenHolder, method: str, url: str, **kwargs: Any) -> httpx.Request:
        headers = {
            "authorization": f"Bearer {holder.token}",
            "linkedin-version": self.settings.linkedin_version,
            "x-restli-protocol-version": "2.0.0",
        }
        return self.client.build_request(method, url, headers=headers, **kwargs)

    def _refresher(self) -> Refresher:
        credentials = self.settings.client("linkedin")

        async def refresh(connection: Connection) -> TokenSet:
            form = refresh_grant(
                credentials, connection,
                needs="LinkedIn token refresh needs SCHEDULER_LINKEDIN_CLIENT_ID and SCHEDULER_LINKEDIN_CLIENT_SECRET",
            )
            request = self.client.build_request("POST", f"{self.oauth_base}/accessToken", data=form)
            response = await send(self.client, request, what="LinkedIn token refresh")
            return refreshed_tokens(response, platform=self.name, classify=classify)

        return refresh


def _author(connection: Connection) -> str:
    urn = connection.metadata.get("author_urn")
    if isinstance(urn, str) and urn.startswith("urn:li:"):
        return urn
    account = connection.account_id
    if not account:
        raise PlatformConfigError("the linkedin connection has no account_id (member id or author URN)")
    return account if account.startswith("urn:li:") else f"urn:li:person:{account}"


def _url(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}"


def _published(urn: str) -> PublishResult:
    return PublishResult(urn, _url(urn))
