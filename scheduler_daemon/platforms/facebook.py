"""Facebook Pages through the Graph API.

Connection row: ``account_id`` = the Page id; ``access_token`` = a Page access token with
``pages_manage_posts`` (it does not expire; there is no refresh grant, an auth failure
means "reconnect facebook"); ``refresh_token`` unused; no metadata keys.

* text: ``POST /{page}/feed`` (``message``) with ``fields=id,permalink_url``;
* one image: ``POST /{page}/photos`` (``url``, ``caption``, ``published=true``);
* several images: each uploaded with ``published=false`` (``prepare``: nothing is visible
  yet), then ``/{page}/feed`` with ``attached_media``.

Settings: ``SCHEDULER_FACEBOOK_API_BASE`` (host, default ``https://graph.facebook.com``),
``SCHEDULER_GRAPH_API_VERSION``. Exactly-once: none offered. On the call that creates
the post (``/feed``, a published ``/photos``) only Graph's throttling codes (4, 17, 32,
613, …: the call was refused), a refused connection and the permanent errors prove that
nothing was posted; a 5xx, codes 1 and 2 or ``is_transient`` ("An unexpected error has
occurred", answered also after the post was created), a timeout or a reset is an unknown
outcome, reported and never retried (``_http.on_create``); a repeat would be refused as
a duplicate (506) while the first post is live. Unpublished photo uploads are retried
freely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from ..config.platforms import PlatformSettings
from ..errors import PlatformConfigError, PublishError
from ..models import Connection, Post, PublishResult
from ._calls import json_object, require_id, text_field
from ._http import call
from ._tokens import TokenHolder
from .base import UNLIMITED, Adapter, Item, MediaLimit, PlatformFacts, Prepared, PublishContext, TextLimit
from .graph import classify


class FacebookAdapter(Adapter):
    # Pacing: Page-token calls count against the Page's Business Use Case limit (4,800 ×
    # engaged users per Page per rolling 24 h), a per-Page budget: 2 in flight per Page and
    # no app-wide bound (a throttled call answers codes 4/17/32/613 and is retried).
    facts = PlatformFacts(
        "facebook", "Facebook", api_base="https://graph.facebook.com", concurrency=(UNLIMITED, 2),
        text=(TextLimit(63_206),), media=MediaLimit(10),
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.base = f"{self.base}/{settings.graph_api_version}"

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        page = _page(connection)
        if len(post.media) < 2:
            return {}
        holder = TokenHolder(self.name, connection, ctx, None)
        photos = [await self._unpublished_photo(holder, page, await ctx.media_url(m)) for m in post.media]
        return {"photo_ids": photos}

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        page = _page(connection)
        holder = TokenHolder(self.name, connection, ctx, None)
        if not item.media:
            return await self._feed(holder, page, {"message": item.content})
        if len(item.media) == 1:
            return await self._photo(holder, page, await ctx.media_url(item.media[0]), item.content)
        attached = json.dumps([{"media_fbid": media_id} for media_id in prepared["photo_ids"]])
        return await self._feed(holder, page, {"message": item.content, "attached_media": attached})

    def _classify(self, response: httpx.Response) -> PublishError | None:
        return classify(self.name, response)

    async def _post(
        self, holder: TokenHolder, path: str, fields: Mapping[str, str], what: str, query: Mapping[str, str],
        *, creates: bool,
    ) -> dict[str, object]:
        url = f"{self.base}/{path}"

        def build() -> httpx.Request:
            data = {**fields, "access_token": holder.token}
            return self.client.build_request("POST", url, params=dict(query), data=data)

        return json_object(await call(self.client, holder, build, self._classify, what=what, creates=creates))

    async def _feed(self, holder: TokenHolder, page: str, fields: Mapping[str, str]) -> PublishResult:
        data = await self._post(
            holder, f"{page}/feed", fields, "Facebook post", {"fields": "id,permalink_url"}, creates=True
        )
        post_id = require_id(data, "id", what="Facebook post")
        return PublishResult(post_id, text_field(data, "permalink_url") or f"https://www.facebook.com/{post_id}")

    async def _photo(self, holder: TokenHolder, page: str, url: str, caption: str) -> PublishResult:
        fields = {"url": url, "caption": caption, "published": "true"}
        data = await self._post(holder, f"{page}/photos", fields, "Facebook photo post", {}, creates=True)
        post_id = text_field(data, "post_id") or require_id(data, "id", what="Facebook photo post")
        return PublishResult(post_id, f"https://www.facebook.com/{post_id}")

    async def _unpublished_photo(self, holder: TokenHolder, page: str, url: str) -> str:
        fields = {"url": url, "published": "false"}
        data = await self._post(holder, f"{page}/photos", fields, "Facebook photo upload", {}, creates=False)
        return require_id(data, "id", what="Facebook photo upload")


def _page(connection: Connection) -> str:
    if not connection.account_id:
        raise PlatformConfigError("the facebook connection has no account_id (the Page id)")
    return connection.account_id
