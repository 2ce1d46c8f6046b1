"""Instagram (Graph containers)."""

from __future__ import annotations

from .graph import ContainerFake


class InstagramFake(ContainerFake):
    name = "instagram"
    version = "v26.0"
    user = "17841"
    create_edge, publish_edge, status_field, caption_field = "media", "media_publish", "status_code", "caption"
    refresh_grant = "ig_refresh_token"
    content_error = (36003, 2207009, "The submitted image with aspect ratio ('0.3/1') cannot be published.")
