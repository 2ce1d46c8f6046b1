"""The ``log`` platform: writes the post as one structured log line (demo and dry runs)."""

from __future__ import annotations

import structlog

from ..models import Connection, Post, PublishResult
from .base import UNLIMITED, Adapter, Item, PlatformFacts, Prepared, PublishContext

logger = structlog.get_logger("scheduler_daemon.platforms.log")


class LogAdapter(Adapter):
    # The demo: bounded only by SCHEDULER_CONCURRENCY, and no token.
    facts = PlatformFacts("log", "log", tokenless=True, concurrency=(UNLIMITED, UNLIMITED))

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        logger.info("log platform post", content=item.content, media=len(item.media))
        return PublishResult(f"log-{post.id}", None)
