"""8. Realistic burst: posts of many accounts due at one instant, to a platform that answers
in a median 300 ms (lognormal, sigma 0.5), the receiver in its own process.

Run with the defaults (``SCHEDULER_CONCURRENCY=100``: the targets), then once more with
the global cap at the burst's size, to show what the cap alone costs (no target).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..context import Context
from ..harness import bench_settings
from ..instant import Burst, through_daemon
from ..receiver import ReceiverProcess
from ..results import target


def latency_options(ctx: Context) -> list[str]:
    return ["--latency-ms", str(ctx.sizes.platform_latency_ms), "--sigma", "0.5"]


async def measure(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    async with ReceiverProcess("fast", *latency_options(ctx)) as rx:
        burst = Burst("webhook", s.realistic_accounts, s.realistic_per_account, {"url": rx.url + "/hook"})
        default = await through_daemon(ctx, rx, bench_settings(), burst)
        uncapped = await through_daemon(ctx, rx, bench_settings(concurrency=burst.posts), burst)
    return {"platform_latency_ms": s.platform_latency_ms, "sigma": 0.5, "default": default,
            "uncapped": uncapped}


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    d, u = result["default"], result["uncapped"]
    late = d["lateness_ms"]
    note = (f"{d['posts']:,} posts, {d['accounts']:,} accounts, SCHEDULER_CONCURRENCY={d['concurrency']}; "
            f"with it at {u['concurrency']:,}: p99 {u['lateness_ms'].get('p99')} ms, "
            f"max {u['lateness_ms'].get('max')} ms")
    result["targets"] = [
        target("realistic", "p99 arrival − due", late.get("p99"), "<=", 1000.0, "ms", note),
        target("realistic", "max arrival − due", late.get("max"), "<=", 2000.0, "ms",
               f"p50 {late.get('p50')} ms"),
        target("realistic", "posts missing", float(d["posts"] - d["arrived"]), "<=", 0, "posts"),
        target("realistic", "duplicates", float(d["duplicates"]), "<=", 0, "posts"),
    ]
    return result
