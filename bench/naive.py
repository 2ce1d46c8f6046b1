"""The designs the schedule is compared with, as processes measured like the daemon.

``python -m bench.naive tasks``: the naive design, one asyncio task per post sleeping
until its instant. ``python -m bench.naive heap``: the same minimal process holding the
daemon's ``Timers`` instead. Both load the rows with the daemon's own query and
conversion (the repository's streamed batches, each with the due instant the
database computed), send READY=1 to
``$NOTIFY_SOCKET`` once every post is armed, and wait for SIGTERM. ``DATABASE_URL`` names
the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

from scheduler_daemon.db.repository import Repository, create_pool
from scheduler_daemon.engine.timers import Timers
from scheduler_daemon.models import LoadedRow
from scheduler_daemon.systemd import Notifier


async def _sleep_until(due: float) -> None:
    await asyncio.sleep(max(0.0, due - time.time()))


async def _scheduled(repository: Repository) -> AsyncIterator[list[LoadedRow]]:
    """The rows as the daemon loads them: streamed in batches where the package does so."""
    batches = getattr(repository, "scheduled_batches", None)
    if batches is not None:
        async for batch in batches():
            yield batch
    else:
        yield await repository.load_scheduled()  # type: ignore[attr-defined, unused-ignore]


async def main(mode: str) -> None:
    pool = await create_pool(os.environ["DATABASE_URL"], instance_id="naive", max_size=2)
    tasks: list[asyncio.Task[None]] = []
    schedule = Timers()
    async for batch in _scheduled(Repository(pool, "naive")):
        for row in batch:
            if row.due is None:
                continue  # the daemon would reject it
            if mode == "tasks":
                tasks.append(asyncio.create_task(_sleep_until(row.due)))
            else:
                schedule.arm(row.id, row.due, row.version)
    await asyncio.sleep(0)  # every task has started and sits in its sleep
    armed = len(tasks) or len(schedule)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    Notifier(os.environ.get("NOTIFY_SOCKET")).ready(f"{armed} armed ({mode})")
    await stop.wait()
    for task in tasks:
        task.cancel()
    await pool.close()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("tasks", "heap"):
        sys.exit("usage: python -m bench.naive tasks|heap")
    asyncio.run(main(sys.argv[1]))
