"""9. Media burst: the realistic burst where every post has an image, through the real
Instagram adapter against a local fake of the Graph API's container flow (``bench.receiver
--kind graph``): creating a container takes 300 ms (Meta fetching the image), it is
``FINISHED`` 2 s later, every other answer takes a median 300 ms (lognormal, sigma 0.5).
Lateness is the final call's: ``media_publish`` received − due.

The posts are inserted ``media_prepare_lead_s`` before their instant, inside the prepare
window (``SCHEDULER_PREPARE_SECONDS``, default 300 s): the daemon creates every container
and waits for ``FINISHED`` ahead of the instant, and at it sends ``media_publish`` (and the
permalink lookup after it). ``prepare`` in each run says how far preparation got before the
instant and which calls the platform received from the instant on.

The adapter declares Instagram's pacing as 1 publish in flight per account and no
app-wide bound (it was 5 per app until 2026-12-01: at 3–4 s per post that alone spread
5,000 posts over most of an hour). The main run lifts both (``SCHEDULER_INSTAGRAM_CONCURRENCY`` and
``SCHEDULER_INSTAGRAM_ACCOUNT_CONCURRENCY`` at 10,000) and keeps ``SCHEDULER_CONCURRENCY``
at its default: it measures the media pipeline at the instant. A second run lifts the
global cap too (no target); a small third one keeps the shipped pacing, and its rate is
projected to the full burst.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..context import Context
from ..harness import bench_settings
from ..instant import Burst, through_daemon
from ..receiver import ReceiverProcess
from ..results import target

IMAGE = [{"url": "https://media.example/bench/photo.jpg", "mime": "image/jpeg", "alt": "a bench photo"}]
LIFTED = {"SCHEDULER_INSTAGRAM_CONCURRENCY": "10000", "SCHEDULER_INSTAGRAM_ACCOUNT_CONCURRENCY": "10000"}


def graph_options(ctx: Context) -> list[str]:
    s = ctx.sizes
    return ["--upload-ms", str(s.media_upload_ms), "--container-ms", str(s.media_container_ms),
            "--latency-ms", str(s.platform_latency_ms), "--sigma", "0.5"]


async def measure(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    async with ReceiverProcess("graph", *graph_options(ctx)) as rx:
        env = {"SCHEDULER_INSTAGRAM_API_BASE": rx.url}
        if s.media_poll_interval_s is not None:
            env["SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS"] = str(s.media_poll_interval_s)
        burst = Burst("instagram", s.realistic_accounts, s.realistic_per_account, media=IMAGE)
        lifted = {**env, **LIFTED}
        lead = s.media_prepare_lead_s
        default = await through_daemon(ctx, rx, bench_settings(lifted), burst, lead_s=lead)
        uncapped = await through_daemon(ctx, rx, bench_settings(lifted, concurrency=burst.posts), burst, lead_s=lead)
        paced_burst = Burst("instagram", s.media_paced_accounts, s.media_paced_per_account, media=IMAGE)
        paced = await through_daemon(ctx, rx, bench_settings(env), paced_burst, lead_s=lead)
    rate = paced["posts_per_s"]
    paced["projected_last_arrival_s"] = round(burst.posts / rate, 1) if rate else None
    return {"upload_ms": s.media_upload_ms, "container_ms": s.media_container_ms, "lead_s": s.media_prepare_lead_s,
            "poll_interval_s": bench_settings(env).platforms.media_poll_interval_seconds,
            "default": default, "uncapped": uncapped, "shipped_pacing": paced}


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    d, u, p = result["default"], result["uncapped"], result["shipped_pacing"]
    late = d["lateness_ms"]
    prep = d["prepare"]
    result["targets"] = [
        target("media", "posts prepared before the instant", float(prep["prepared"]), ">=", float(d["posts"]),
               "posts", f"inserted {result['lead_s']:g} s ahead; all prepared {prep['margin_s']} s before due "
               f"({prep['seconds']} s); calls from the instant on: {prep['calls_from_due']}"),
        target("media", "p99 final call (media_publish) − due", late.get("p99"), "<=", 1000.0, "ms",
               f"Instagram pacing lifted, SCHEDULER_CONCURRENCY={d['concurrency']}; p50 {late.get('p50')} ms, "
               f"max {late.get('max')} ms; with it at {u['concurrency']:,}: p99 {u['lateness_ms'].get('p99')} ms"),
        target("media", "p99 final call − due, shipped Instagram pacing (1 per account, none per app)",
               p["lateness_ms"].get("p99"), "<=", 1000.0, "ms",
               f"{p['posts']} posts over {p['accounts']} accounts; at its {p['posts_per_s']} posts/s "
               f"{d['posts']:,} posts would end {p['projected_last_arrival_s']} s after due"),
        target("media", "posts missing", float(d["posts"] - d["arrived"]), "<=", 0, "posts"),
        target("media", "duplicates", float(d["duplicates"]), "<=", 0, "posts"),
    ]
    return result
