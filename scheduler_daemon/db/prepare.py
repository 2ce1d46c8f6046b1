"""The preparer's side of the database (``sql/prepare.sql``): leases in, models out.

A lease is taken with one compare-and-swap UPDATE for a whole batch and given back by the
write that ends the preparation; no lock is held while the platform is called.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..models import ClaimedPost
from ..redact import SECRETS
from . import rows
from .sql import q


class PrepareStore:
    def __init__(self, pool: asyncpg.Pool, instance_id: str, *, max_content_chars: int = 100_000) -> None:
        self.pool = pool
        self.instance_id = instance_id
        self.max_content_chars = max_content_chars

    async def lease(
        self, items: Sequence[tuple[uuid.UUID, int]], seconds: float
    ) -> list[tuple[ClaimedPost, float, bool]]:
        """Lease (id, version) pairs for ``seconds``; the posts won, with their instants (epoch
        seconds, the row's own) and whether their row holds a ``prepare_error``."""
        if not items:
            return []
        ids, versions = zip(*items, strict=True)
        won = await self.pool.fetch(q("prepare_lease"), list(ids), list(versions), self.instance_id, seconds)
        return [(rows.claimed(r, self.max_content_chars), r["due_us"] / 1_000_000, r["failed_before"]) for r in won]

    async def finish(
        self, post_id: uuid.UUID, version: int, error: str | None, made: dict[str, Any] | None = None
    ) -> None:
        """Prepared for ``version`` with the checkpoints ``made`` (``error`` None), or failed
        with ``error`` (what it made is dropped); the lease ends either way."""
        message = SECRETS.scrub(error)[:2000] if error else None
        await self.pool.execute(q("prepare_finish"), post_id, version, message, self.instance_id, made or {})

    async def release(self, post_ids: Sequence[uuid.UUID]) -> None:
        if post_ids:
            await self.pool.execute(q("prepare_release"), list(post_ids), self.instance_id)
