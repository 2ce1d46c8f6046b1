"""1. Lateness: posts due at random instants, inserted with plain SQL, arrival − due."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import asyncpg

from .. import transports
from ..context import Context
from ..harness import RunningDaemon, bench_settings
from ..pg import insert_posts, webhook_campaign
from ..receiver import ReceiverProcess
from ..results import distribution, target


async def measure(ctx: Context, transport: str = transports.DAEMON_DEFAULT, loop: str = "asyncio") -> dict[str, Any]:
    sizes = ctx.sizes
    count, window = sizes.lateness_posts, sizes.lateness_window_s
    rng = random.Random(6)
    settings = bench_settings()
    async with ctx.database() as dsn, ReceiverProcess() as rx:
        db = await asyncpg.connect(dsn)
        try:
            campaign = await webhook_campaign(db, rx.url)
            async with RunningDaemon(dsn, settings, transport=transports.make(transport, settings.concurrency)) as d:
                began = time.time()
                first = began + sizes.lead_s
                dues = [first + rng.uniform(0, window) for _ in range(count)]
                ids = await insert_posts(db, campaign, dues)
                inserted = time.time()
                complete, arrivals = await rx.wait(count, timeout=window + sizes.lead_s + 30)
                await d.probes.outcomes.reach(count, timeout=30)
                claims = list(d.probes.claims)
                resolved = d.http_transport()
                started = list(d.metrics.lateness)
        finally:
            await db.close()
    due_of = {str(i): due for i, due in zip(ids, dues, strict=True)}
    keys = [a.key for a in arrivals]
    late = [a.wall - due_of[a.key] for a in arrivals if a.key in due_of]
    return {
        "transport": f"{transport} ({resolved})",
        "loop": loop,
        "posts": count,
        "window_s": window,
        "insert_s": round(inserted - began, 3),
        "inserted_before_first_due_s": round(min(dues) - inserted, 3),
        "complete": complete and len(set(keys)) == count,
        "arrived": len(set(keys)),
        "duplicates": len(keys) - len(set(keys)),
        "early": sum(1 for v in late if v < 0),
        "arrival_minus_due_ms": distribution(late),
        "publish_start_minus_due_ms": distribution(started),
        "claim_round_trip_ms": distribution([c.finished - c.started for c in claims]),
        "claims": len(claims),
    }


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    lat = result["arrival_minus_due_ms"]
    result["targets"] = [
        target("lateness", "p99 arrival − due", lat.get("p99"), "<=", 2.0, "ms", "issue 16 (issue 6: ≤ 5 ms)"),
        target("lateness", "max arrival − due", lat.get("max"), "<=", 10.0, "ms", "issue 16 (issue 6: ≤ 20 ms)"),
        target("lateness", "posts missing", float(result["posts"] - result["arrived"]), "<=", 0, "posts"),
        target("lateness", "duplicates", float(result["duplicates"]), "<=", 0, "posts"),
    ]
    return result
