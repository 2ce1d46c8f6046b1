"""Threads (Graph-style containers)."""

from __future__ import annotations

import httpx

from scheduler_daemon.platforms._rules import find_urls

from .base import reply
from .graph import ContainerFake


class ThreadsFake(ContainerFake):
    name = "threads"
    version = "v1.0"
    user = "42"
    create_edge, publish_edge, status_field, caption_field = "threads", "threads_publish", "status", "text"
    refresh_grant = "th_refresh_token"
    content_error = (100, 2207051, "This action was blocked: restricted activity")

    def create(self, fields: dict[str, str]) -> httpx.Response:
        assert fields["media_type"] in ("TEXT", "IMAGE", "VIDEO", "CAROUSEL")
        assert ("video_url" in fields) == (fields["media_type"] == "VIDEO")
        assert "alt_text" not in fields or fields["media_type"] in ("IMAGE", "VIDEO")  # none on text
        if fields["media_type"] == "CAROUSEL":
            assert 2 <= len(fields["children"].split(",")) <= 20
        if len(find_urls(fields.get("text", ""))) > 5:  # since 2025-12-22
            return reply(400, {"error": {"message": "The post has too many links.", "type": "THApiException",
                                         "code": 100, "error_subcode": 4279009,
                                         "error_user_msg": "THREADS_API__LINK_LIMIT_EXCEEDED"}})
        return super().create(fields)
