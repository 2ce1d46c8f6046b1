"""Issue 10, item 3 (the listener's part): a failure in the listener other than
cancellation is a reconnect, never the end of the daemon."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from scheduler_daemon.db.listener import Listener
from scheduler_daemon.db.repository import Repository, create_pool


async def test_a_sync_that_raises_something_else_than_a_database_error_is_retried_on_a_new_connection(
    dsn: str,
) -> None:
    """A row the sync cannot take (say a year Python cannot hold) raised ValueError out of
    ``on_sync`` and ended the process; now the listener reconnects and syncs again."""
    pool = await create_pool(dsn, instance_id="cafe0002@listener")
    syncs: list[str] = []

    async def sync() -> None:
        syncs.append("sync")
        if len(syncs) == 1:
            raise ValueError("year 10000 is out of range")

    listener = Listener(dsn, Repository(pool, "cafe0002@listener"), on_payload=lambda _p: None, on_sync=sync,
                        heartbeat_seconds=0.5, heartbeat_timeout_seconds=2.0)
    try:
        async with asyncio.TaskGroup() as tasks, AsyncExitStack() as stack:
            listener.start(tasks, stack)
            async with asyncio.timeout(15):
                await listener.started.wait()
        assert syncs == ["sync", "sync"]
    finally:
        await pool.close()
