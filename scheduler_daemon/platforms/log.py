"""The ``log`` platform: writes the post as one structured log line (demo and dry runs)."""

from __future__ import annotations

from typing import ClassVar

import httpx
import structlog

from ..models import Connection, Post, PublishResult
from .base import PublishContext
from .settings import PlatformSettings

logger = structlog.get_logger("scheduler_daemon.platforms.log")


class LogAdapter:
    name: ClassVar[str] = "log"
    idempotent: ClassVar[bool] = False

    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        pass

    def validate(self, post: Post) -> None:
        return None

    async def publish(self, post: Post, connection: Connection, ctx: PublishContext) -> PublishResult:
        logger.info("log platform post", content=post.content, media=len(post.media))
        return PublishResult(f"log-{post.id}", None)
