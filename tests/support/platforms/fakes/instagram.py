"""Instagram (Graph containers): images, Reels, carousels of both, comments."""

from __future__ import annotations

import httpx

from .graph import ContainerFake


class InstagramFake(ContainerFake):
    name = "instagram"
    version = "v26.0"
    user = "17841"
    create_edge, publish_edge, status_field, caption_field = "media", "media_publish", "status_code", "caption"
    refresh_grant = "ig_refresh_token"
    content_error = (36003, 2207009, "The submitted image with aspect ratio ('0.3/1') cannot be published.")

    def create(self, fields: dict[str, str]) -> httpx.Response:
        kind = fields.get("media_type", "IMAGE")
        child = fields.get("is_carousel_item") == "true"
        assert kind in (("IMAGE", "VIDEO") if child else ("IMAGE", "REELS", "CAROUSEL")), (kind, child)
        assert ("video_url" in fields) == (kind in ("VIDEO", "REELS"))
        assert "alt_text" not in fields or kind == "IMAGE", "alt text is for images only"
        assert not {"share_to_feed", "thumb_offset"} & set(fields) or kind == "REELS"
        assert ("caption" in fields) != child, "a caption goes on the post, not on its children"
        if kind == "CAROUSEL":
            assert 2 <= len(fields["children"].split(",")) <= 10
        return super().create(fields)
