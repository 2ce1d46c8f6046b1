"""Seeds the demo: a user, a campaign, a ``log`` connection and posts due in seconds."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from .sql import q


async def seed(dsn: str, count: int, spacing_seconds: float = 3.0) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            user = uuid.uuid4()
            campaign = await conn.fetchval(q("demo_campaign"), user)
            await conn.execute(q("demo_connection"), user)
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            for n in range(1, count + 1):
                due = now + dt.timedelta(seconds=spacing_seconds * n)
                content = f"demo post {n}, due {due.time().isoformat()} UTC"
                await conn.execute(q("demo_post"), campaign, content, due.date(), due.time())
    finally:
        await conn.close()
