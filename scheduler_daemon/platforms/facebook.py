"""Facebook Pages through the Graph API.

Connection row: ``account_id`` = the Page id; ``access_token`` = a Page access token with
``pages_manage_posts`` (it does not expire; there is no refresh grant, an auth failure
means "reconnect facebook"); ``refresh_token`` unused; no metadata keys.

* text: ``POST /{page}/feed`` (``message``) with ``fields=id,permalink_url``;
* one image: ``POST /{page}/photos`` (``url``, ``caption``, ``alt_text_custom``,
  ``published=true``);
* several images (a multi-photo post, up to 10): each uploaded with ``published=false`` and
  its ``alt_text_custom`` (``prepare``: nothing is visible yet), then ``/{page}/feed`` with
  ``attached_media``;
* one video (alone: no images beside it, one per post), spooled first: a Reel
  (``facebook_reels``) when the Reels rules take it, uploaded in ``prepare``, published by
  ``finish`` in ``publish``, 30 per Page in 24 h; any other, once the Meta app id is set
  (``SCHEDULER_FACEBOOK_CLIENT_ID``), a Page video (``facebook_video``): checked against
  ``PAGE_VIDEO``, uploaded (resumably) in ``prepare``, created by ``/{page}/videos`` in
  ``publish``; without the app id it is refused, naming the setting;
* first comment: ``POST /{post-id}/comments`` (``message``) once the post is out.

Settings: ``SCHEDULER_FACEBOOK_API_BASE`` (host, default ``https://graph.facebook.com``),
``SCHEDULER_GRAPH_API_VERSION``, ``SCHEDULER_FACEBOOK_CLIENT_ID`` (the Meta app id).

Exactly-once: none offered. On the call that creates the post (``/feed``, a published
``/photos``, a Reel's ``finish``, a Page video's ``/videos``) only Graph's throttling codes
(4, 17, 32, 613, …: the call was refused), a refused connection and the permanent errors
prove that nothing was posted; a 5xx, codes 1 and 2 or ``is_transient`` ("An unexpected
error has occurred", answered also after the post was created), a timeout or a reset is an
unknown outcome, reported and never retried (``_http.on_create``); a repeat would be
refused as a duplicate (506) while the first post is live. Unpublished photo uploads and
video uploads are retried freely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from ..config.platforms import PlatformSettings
from ..errors import ContentRejectedError, PlatformConfigError, PreparedStaleError, PublishError
from ..mediafile import MediaFile
from ..models import Connection, MediaItem, Post, PostItem, PublishResult
from ._calls import json_object, require_id, text_field
from ._http import call
from ._tokens import TokenHolder
from ._video import is_video, spooled_video
from .base import (
    UNLIMITED,
    Adapter,
    Item,
    MediaLimit,
    PlatformFacts,
    Prepared,
    PublishContext,
    TextLimit,
    VideoLimit,
    check_video,
)
from .facebook_reels import ReelsFlow, ReelsQuota
from .facebook_video import APP_ID_SETTING, VideoFlow
from .graph import classify

# Reels, as the Reels Publishing API states them: MP4 (MOV taken), H.264 or H.265 (VP9 and
# AV1 too), AAC, 3 to 90 seconds, 24 to 60 frames per second, 9:16 of at least 540×960
# (``_reel_refusal``); no stated size limit. At most 30 Reels per Page in a moving 24 h.
VIDEO = VideoLimit(
    ("mp4", "mov"), ("h264", "hevc", "vp9", "av1"), ("aac",), min_seconds=3, max_seconds=90,
    min_frame_rate=24, max_frame_rate=60, per_day=30,
)
REEL_MIN = (540, 960)  # width, height
# Other Page videos (the Video API, with the app id): the Resumable Upload API takes video/mp4
# only; Facebook takes Page videos up to 10 GB and 240 minutes, H.264 or H.265 with AAC.
PAGE_VIDEO = VideoLimit(("mp4",), ("h264", "hevc"), ("aac",), max_bytes=10 * 10**9, max_seconds=240 * 60)


class FacebookAdapter(Adapter):
    # Pacing: Page-token calls count against the Page's Business Use Case limit (4,800 ×
    # engaged users per Page per rolling 24 h), a per-Page budget: 2 in flight per Page and
    # no app-wide bound (a throttled call answers codes 4/17/32/613 and is retried).
    facts = PlatformFacts(
        "facebook", "Facebook", api_base="https://graph.facebook.com", concurrency=(UNLIMITED, 2),
        text=(TextLimit(63_206),), media=MediaLimit(10, video=VIDEO, alt_text=True),
        first_comment=TextLimit(8_000),
    )

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        super().__init__(settings, client)
        self.base = f"{self.base}/{settings.graph_api_version}"
        self.reels_quota = ReelsQuota(VIDEO.per_day or 0)

    def validate_item(self, item: PostItem, what: str) -> None:
        super().validate_item(item, what)
        if len(item.media) > 1 and any(is_video(m) for m in item.media):
            count = len(item.media)
            raise ContentRejectedError(f"Facebook takes one video per post, on its own; {what} has {count} media")

    async def prepare(self, post: Post, connection: Connection, ctx: PublishContext) -> Prepared:
        page = _page(connection)
        holder = TokenHolder(self.name, connection, ctx, None)
        if len(post.media) == 1 and is_video(post.media[0]):
            return await self._prepare_video(holder, page, post.media[0], ctx)
        if len(post.media) < 2:
            return {}
        photos = [await self._unpublished_photo(holder, page, await ctx.media_url(m), m) for m in post.media]
        return {"photo_ids": photos}

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        page = _page(connection)
        holder = TokenHolder(self.name, connection, ctx, None)
        if not item.media:
            return await self._feed(holder, page, {"message": item.content})
        if is_video(item.media[0]):
            handle = prepared.get("video_handle")
            if isinstance(handle, str):
                return await self._video(holder).publish(page, handle, item, ctx)
            video_id = prepared.get("video_id")
            if not isinstance(video_id, str):
                raise PreparedStaleError("Facebook: no video was uploaded for this post")
            return await self._reels(holder).publish(page, video_id, item.content)
        if len(item.media) == 1:
            return await self._photo(holder, page, await ctx.media_url(item.media[0]), item.content, item.media[0])
        attached = json.dumps([{"media_fbid": media_id} for media_id in prepared["photo_ids"]])
        return await self._feed(holder, page, {"message": item.content, "attached_media": attached})

    async def comment(
        self, post: Post, on: PublishResult, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        if not on.platform_post_id:
            raise ContentRejectedError("Facebook: the post's id is unknown; the comment has nothing to go under")
        holder = TokenHolder(self.name, connection, ctx, None)
        fields = {"message": post.first_comment or ""}
        data = await self._post(holder, f"{on.platform_post_id}/comments", fields, "Facebook comment", {}, creates=True)
        return PublishResult(require_id(data, "id", what="Facebook comment"), on.platform_post_url)

    async def _prepare_video(self, holder: TokenHolder, page: str, media: MediaItem, ctx: PublishContext) -> Prepared:
        """A Reel when the Reels rules take the video; else, with the app id, a Page video."""
        app_id = _app_id(self.settings)
        display = self.facts.display
        async with spooled_video(ctx, display, PAGE_VIDEO.max_bytes if app_id else None, media, "this post") as file:
            refusal = _reel_refusal(file)
            if refusal is None:
                return {"video_id": await self._reels(holder).upload(page, file)}
            if app_id is None:
                raise ContentRejectedError(
                    f"{refusal}; other Page videos go through the Video API once {APP_ID_SETTING} (the Meta app id)"
                    " is set"
                )
            check_video(display, PAGE_VIDEO, file, "this post")
            return {"video_handle": await self._video(holder).upload(app_id, file, media, ctx)}

    def _reels(self, holder: TokenHolder) -> ReelsFlow:
        return ReelsFlow(self.base, self.client, holder, self.settings, self.reels_quota)

    def _video(self, holder: TokenHolder) -> VideoFlow:
        return VideoFlow(self.base, self.client, holder, self.settings)

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

    async def _photo(
        self, holder: TokenHolder, page: str, url: str, caption: str, media: MediaItem
    ) -> PublishResult:
        fields = {"url": url, "caption": caption, "published": "true", **_alt(media)}
        data = await self._post(holder, f"{page}/photos", fields, "Facebook photo post", {}, creates=True)
        post_id = text_field(data, "post_id") or require_id(data, "id", what="Facebook photo post")
        return PublishResult(post_id, f"https://www.facebook.com/{post_id}")

    async def _unpublished_photo(self, holder: TokenHolder, page: str, url: str, media: MediaItem) -> str:
        fields = {"url": url, "published": "false", **_alt(media)}
        data = await self._post(holder, f"{page}/photos", fields, "Facebook photo upload", {}, creates=False)
        return require_id(data, "id", what="Facebook photo upload")


def _page(connection: Connection) -> str:
    if not connection.account_id:
        raise PlatformConfigError("the facebook connection has no account_id (the Page id)")
    return connection.account_id


def _app_id(settings: PlatformSettings) -> str | None:
    """The Meta app's id (``SCHEDULER_FACEBOOK_CLIENT_ID``): a number, or unset."""
    app_id = settings.client("facebook").client_id
    if app_id is not None and not app_id.isdigit():
        raise PlatformConfigError(f"{APP_ID_SETTING} must be the Meta app's id (digits only)")
    return app_id


def _reel_refusal(file: MediaFile) -> ContentRejectedError | None:
    """Why the Reels rules refuse the video, or None. A Reel is also vertical (9:16) and at
    least 540×960: a landscape or smaller video would be refused (or cropped) only after
    its upload."""
    try:
        check_video("Facebook", VIDEO, file, "this post")
    except ContentRejectedError as exc:
        return exc
    facts = file.video
    width, height = (facts.width or 0, facts.height or 0) if facts else (0, 0)
    if width < REEL_MIN[0] or height < REEL_MIN[1] or width > height:
        return ContentRejectedError(
            f"Facebook takes Reels: vertical (9:16) videos of at least {REEL_MIN[0]}×{REEL_MIN[1]};"
            f" the video of this post is {width}×{height}"
        )
    return None


def _alt(media: MediaItem) -> dict[str, str]:
    """A photo's alt text, as Graph's photo upload takes it."""
    return {"alt_text_custom": media.alt} if media.alt else {}
