"""5. Idle: posts armed, nothing due; every statement the daemon sends, counted on the wire.

The daemon connects through ``bench.proxy.CountingProxy``; counting starts once it is
ready (boot load done) and runs for the idle window. Expected: only the listener's
heartbeat (``heartbeat``: the clock and the liveness news; the liveness lock's own session
sends nothing once it holds the lock), one per ``SCHEDULER_HEARTBEAT_SECONDS`` (default
10 s), and
(issue 16, once the daemon arms only a horizon) one range query per horizon step: a
statement whose name in ``db/sql/*.sql`` contains ``horizon``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import asyncpg

from ..context import Context
from ..harness import RunningDaemon, bench_settings
from ..pg import insert_posts, webhook_campaign
from ..proxy import CountingProxy
from ..results import target


async def measure(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    settings = bench_settings()
    async with ctx.database() as dsn, CountingProxy(dsn) as proxy:
        db = await asyncpg.connect(dsn)
        try:
            campaign = await webhook_campaign(db, "http://127.0.0.1:9")
            await insert_posts(db, campaign, [time.time() + 3600 + n for n in range(sizes.idle_posts)])
        finally:
            await db.close()
        async with RunningDaemon(proxy.dsn, settings) as d:
            armed = len(d.dispatcher.timers)
            boot = proxy.reset()
            await asyncio.sleep(sizes.idle_seconds)  # the measurement window itself
            idle = proxy.reset()
    heartbeats = math.floor(sizes.idle_seconds / settings.heartbeat_seconds)
    return {
        "armed": armed,
        "seconds": sizes.idle_seconds,
        "heartbeat_s": settings.heartbeat_seconds,
        "expected_heartbeats": heartbeats,
        "idle": idle.as_dict(),
        "boot": boot.as_dict(),
    }


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    idle = result["idle"]
    by_query: dict[str, int] = idle["statements_by_query"]
    horizon = sum(n for name, n in by_query.items() if "horizon" in name)
    other = idle["statements"] - by_query.get("heartbeat", 0) - horizon
    result["horizon_steps"] = horizon
    result["statements_other_than_heartbeat"] = other
    result["targets"] = [
        target("idle", f"heartbeats in {result['seconds']:g} s with {result['armed']:,} armed",
               float(by_query.get("heartbeat", 0)), "<=", float(result["expected_heartbeats"] + 1), "statements",
               f"by query: {by_query or 'none'}; horizon steps: {horizon}"),
        target("idle", "statements other than the heartbeat and the horizon step", float(other), "<=", 0,
               "statements"),
    ]
    return result
