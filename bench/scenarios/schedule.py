"""3. A big schedule: process start → READY=1 and resident memory, against the naive design.

Each size gets its own database, seeded with triggers off (the boot load is measured, not
a million notifications): 100,000 and 1,000,000 rows due over 30 days, and (issue 16)
10,000,000 due over a year, where only the daemon is measured (the naive designs would
need tens of GiB). The databases are dropped afterwards. Measured as separate processes: ``scheduler-daemon run`` (the
real command, ``DATABASE_URL`` and ``NOTIFY_SOCKET`` set; ``--migrate`` only checks, the
database is migrated already), and ``bench.naive`` in its
``tasks`` (one asyncio task per post) and ``heap`` (the daemon's ``Timers``) modes. The
idle figures (an empty table) are the baseline for "above the idle process".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from scheduler_daemon.config import Settings

from ..context import Context
from ..pg import seed_far_future, webhook_campaign
from ..process import python_module, run_until_ready
from ..results import target

DAEMON_ENV = {"SCHEDULER_LOG_LEVEL": "warning", "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_INSTANCE_ID": "bench"}


async def _within_horizon(dsn: str) -> int:
    """The scheduled rows due within the daemon's default horizon, now."""
    db = await asyncpg.connect(dsn)
    try:
        return int(await db.fetchval(
            "SELECT count(*) FROM content_posts WHERE status = 'scheduled'"
            " AND due_at < now() + $1 * interval '1 second'", Settings.horizon_seconds))
    finally:
        await db.close()


async def _seeded(ctx: Context, rows: int, days: int, naive: bool) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    async with ctx.database() as dsn:
        if rows:
            db = await asyncpg.connect(dsn)
            try:
                began = time.perf_counter()
                campaign = await webhook_campaign(db, "http://127.0.0.1:9")
                await seed_far_future(db, campaign, rows, notify=False, days=days)
                seeded = time.perf_counter()
                await db.execute("VACUUM ANALYZE content_posts")
                figures["seeding"] = {
                    "insert_s": round(seeded - began, 1), "vacuum_s": round(time.perf_counter() - seeded, 1),
                    "days": days, "table_mib": round(await db.fetchval(
                        "SELECT pg_total_relation_size('content_posts')") / 2**20, 1),
                }
            finally:
                await db.close()
        env = {**DAEMON_ENV, "DATABASE_URL": dsn}
        timeout = 120 + rows / 5000
        before = await _within_horizon(dsn)
        figures["daemon"] = (
            await run_until_ready(python_module("scheduler_daemon.cli", "run", "--migrate"), env, timeout)
        ).as_dict()
        # Rows only enter the horizon as time passes (none is due yet): what the daemon armed
        # lies between these two counts.
        figures["daemon"]["horizon_rows"] = [before, await _within_horizon(dsn)]
        for mode in ("heap", "tasks") if naive else ():
            ready = await run_until_ready(python_module("bench.naive", mode), env, timeout)
            figures[f"naive_{mode}"] = ready.as_dict()
    return figures


async def measure(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    result: dict[str, Any] = {"rows": {}}
    for rows in (0, sizes.schedule_small, sizes.schedule_big):
        result["rows"][str(rows)] = await _seeded(ctx, rows, 30, naive=True)
    result["rows"][str(sizes.schedule_huge)] = await _seeded(ctx, sizes.schedule_huge, sizes.schedule_huge_days,
                                                             naive=False)
    return result


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    sizes = ctx.sizes
    idle = result["rows"]["0"]["daemon"]
    small = result["rows"][str(sizes.schedule_small)]["daemon"]
    big = result["rows"][str(sizes.schedule_big)]["daemon"]
    huge = result["rows"][str(sizes.schedule_huge)]["daemon"]
    small_rss_above = max(small["rss_mb"], small["peak_rss_mb"]) - idle["rss_mb"]
    result["small_above_idle"] = {
        "ready_s": round(small["ready_s"] - idle["ready_s"], 3),
        "rss_mb": round(small["rss_mb"] - idle["rss_mb"], 1),
        "peak_rss_mb": round(small_rss_above, 1),
    }
    s, b = f"{sizes.schedule_small:,} rows", f"{sizes.schedule_big:,} rows"
    h = f"{sizes.schedule_huge:,} rows over {sizes.schedule_huge_days} days"
    result["targets"] = [
        target("schedule", f"{h}: start → READY", huge["ready_s"], "<=", 2.0, "s", "issue 16"),
        target("schedule", f"{h}: peak resident memory", huge["peak_rss_mb"], "<=", 100.0, "MiB",
               f"issue 16; {huge['rss_mb']} MiB resident at READY"),
        target("schedule", f"{b}: start → READY", big["ready_s"], "<=", 10.0, "s"),
        target("schedule", f"{b}: peak resident memory", big["peak_rss_mb"], "<=", 300.0, "MiB",
               f"{big['rss_mb']} MiB resident at READY"),
        target("schedule", f"{s}: start → READY", small["ready_s"], "<=", 1.0, "s",
               f"{result['small_above_idle']['ready_s']} s more than the empty table ({idle['ready_s']} s)"),
        target("schedule", f"{s}: peak memory above the idle process", small_rss_above, "<=", 60.0, "MiB",
               f"idle process: {idle['rss_mb']} MiB"),
    ]
    return result
