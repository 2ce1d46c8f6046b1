"""6. Round trips per published post, counted on the wire (``bench.proxy``).

Two shapes: *spread*, posts due one by one (each claimed and recorded alone: the worst
case), and *burst*, posts due at one instant (claimed and recorded in batches). Counting
runs from the daemon being ready to every outcome written. A pooled connection's first
use of a statement costs one-off round trips (asyncpg's Parse/Describe and type
introspection): shown apart as ``warm_up_round_trips``; the targets are judged on the
steady state without them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from .. import transports
from ..context import Context
from ..harness import RunningDaemon, bench_settings
from ..pg import insert_posts, insert_same_instant, webhook_campaign
from ..proxy import CountingProxy
from ..receiver import ReceiverProcess
from ..results import target


async def _shape(ctx: Context, rx: ReceiverProcess, shape: str) -> dict[str, Any]:
    sizes = ctx.sizes
    count = sizes.roundtrip_spread_posts if shape == "spread" else sizes.roundtrip_burst_posts
    settings = bench_settings()
    await rx.reset()
    async with ctx.database() as dsn, CountingProxy(dsn) as proxy:
        db = await asyncpg.connect(dsn)
        try:
            campaign = await webhook_campaign(db, rx.url)
            async with RunningDaemon(
                proxy.dsn, settings, transport=transports.make(transports.DAEMON_DEFAULT, 100)
            ) as d:
                proxy.reset()
                first = time.time() + sizes.lead_s + count / 2500
                if shape == "spread":
                    await insert_posts(db, campaign, [first + n * sizes.roundtrip_spread_gap_s for n in range(count)])
                else:
                    await insert_same_instant(db, campaign, first, count)
                complete, _ = await rx.wait(count, timeout=60 + count * sizes.roundtrip_spread_gap_s)
                written = await d.probes.outcomes.reach(count, timeout=60)
                counts = proxy.reset()
                claims = len(d.probes.claims)
        finally:
            await db.close()
    warm_up = counts.prepare_round_trips + sum(
        n for name, n in counts.round_trips.items() if name.startswith("asyncpg") and "introspection" in name)
    steady = counts.total_round_trips - warm_up
    return {
        "posts": count,
        "complete": complete and written,
        "claims": claims,
        **counts.as_dict(),
        "round_trips_per_post": round(counts.total_round_trips / count, 3),
        "warm_up_round_trips": warm_up,
        "round_trips_per_post_steady": round(steady / count, 3),
    }


async def measure(ctx: Context) -> dict[str, Any]:
    async with ReceiverProcess() as rx:
        return {"spread": await _shape(ctx, rx, "spread"), "burst": await _shape(ctx, rx, "burst")}


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    spread, burst = result["spread"], result["burst"]
    result["targets"] = [
        target("roundtrips", "round trips per post, posts due one by one", spread["round_trips_per_post_steady"],
               "<=", 2.0, "round trips", f"{spread['round_trips_per_post']} with connection warm-up; "
               f"by statement: {spread['round_trips_by_query']}"),
        target("roundtrips", "round trips per post, burst (batched)", burst["round_trips_per_post_steady"],
               "<=", 2.0, "round trips", f"{burst['claims']} claims; by statement: {burst['round_trips_by_query']}"),
    ]
    return result
