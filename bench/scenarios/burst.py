"""2. Burst: many posts due at one instant, against bare HTTP clients in the same run.

Every measurement posts the same number of webhook-shaped requests to the same receiver
process and is timed the same way: from the instant the posts are due (the bare client's
start) to the receiver's last arrival. The bare clients get their bodies and headers
ready-made and run as CONCURRENCY workers posting one request after another (the
cheapest way to keep that many in flight); the daemon claims, builds, signs, sends and
records each post.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import httpx

from .. import transports
from ..context import Context
from ..harness import RunningDaemon, bench_settings
from ..pg import TOKEN, insert_same_instant, webhook_campaign
from ..receiver import Arrival, ReceiverProcess
from ..results import distribution, target

CONCURRENCY = 100  # the daemon's default SCHEDULER_CONCURRENCY; the bare clients use it too

Request = tuple[bytes, dict[str, str]]


def requests(count: int) -> list[Request]:
    """Bodies and headers like the webhook adapter's, one per fake post."""
    made: list[Request] = []
    for n in range(count):
        post_id = str(uuid.uuid4())
        body = json.dumps(
            {"post_id": post_id, "platform": "webhook", "content": f"burst post {n}", "media": [],
             "scheduled_at": "2030-01-01T00:00:00Z", "campaign_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())},
            separators=(",", ":"),
        ).encode()
        signature = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
        made.append((body, {"content-type": "application/json", "idempotency-key": post_id,
                            "x-scheduler-signature": signature}))
    return made


async def _workers(batch: list[Request], send: Callable[[bytes, dict[str, str]], Awaitable[None]]) -> None:
    """CONCURRENCY workers taking requests in turn: the cheapest way to keep that many in flight."""
    pending = iter(batch)

    async def worker() -> None:
        for body, headers in pending:
            await send(body, headers)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _bare_aiohttp(url: str, batch: list[Request]) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def send(body: bytes, headers: dict[str, str]) -> None:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        await _workers(batch, send)


def _bare_httpx(transport: httpx.AsyncBaseTransport | None) -> Callable[[str, list[Request]], Awaitable[None]]:
    async def post_all(url: str, batch: list[Request]) -> None:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(transport=transport, limits=limits, timeout=30.0) as client:

            async def send(body: bytes, headers: dict[str, str]) -> None:
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()

            await _workers(batch, send)

    return post_all


def _figures(arrivals: list[Arrival], count: int, start: float) -> dict[str, Any]:
    keys = [a.key for a in arrivals]
    last = max((a.wall for a in arrivals), default=start)
    span = last - start
    return {
        "arrived": len(set(keys)),
        "duplicates": len(keys) - len(set(keys)),
        "first_arrival_s": round(min((a.wall for a in arrivals), default=start) - start, 4),
        "last_arrival_s": round(span, 4),
        "posts_per_s": round(len(set(keys)) / span, 1) if span > 0 else None,
    }


async def bare(rx: ReceiverProcess, name: str, count: int) -> dict[str, Any]:
    transport = None if name == "aiohttp" else transports.make(name, CONCURRENCY)
    post_all = _bare_aiohttp if name == "aiohttp" else _bare_httpx(transport)
    batch = requests(count)
    await rx.reset()
    start = time.time()
    cpu = time.process_time()
    await post_all(rx.url + "/hook", batch)
    cpu = time.process_time() - cpu
    _, arrivals = await rx.wait(count, timeout=60)
    used = "aiohttp.ClientSession" if transport is None else transports.class_name(transport)
    return {"client": name, "transport_class": used, "cpu_ms_per_request": round(cpu / count * 1000, 4),
            **_figures(arrivals, count, start)}


async def daemon(ctx: Context, rx: ReceiverProcess, transport: str, count: int) -> dict[str, Any]:
    settings = bench_settings(concurrency=CONCURRENCY)
    await rx.reset()
    async with ctx.database() as dsn:
        db = await asyncpg.connect(dsn)
        try:
            campaign = await webhook_campaign(db, rx.url)
            async with RunningDaemon(dsn, settings, transport=transports.make(transport, CONCURRENCY)) as d:
                lead = ctx.sizes.lead_s + count / 2500
                due = time.time() + lead
                await insert_same_instant(db, campaign, due, count)
                armed = await d.probes.notified.reach(count, timeout=max(0.0, due - time.time()))
                armed_at = time.time()
                cpu = time.process_time()
                complete, arrivals = await rx.wait(count, timeout=120)
                written = await d.probes.outcomes.reach(count, timeout=120)
                written_at = time.time()
                cpu = time.process_time() - cpu
                claims = [(c.asked, c.won, round((c.finished - c.started) * 1000, 2)) for c in d.probes.claims]
                published = await db.fetchval("SELECT count(*) FROM content_posts WHERE status = 'published'")
                resolved = d.http_transport()
        finally:
            await db.close()
    return {
        "transport": transport,
        "resolved_transport": resolved,
        "armed_before_due": armed,
        "armed_margin_s": round(due - armed_at, 3),
        "complete": complete and written,
        **_figures(arrivals, count, due),
        "outcomes_written_s": round(written_at - due, 4),
        "published_rows": published,
        "cpu_ms_per_post": round(cpu / count * 1000, 4),
        "claims_asked_won_ms": claims,
        "publish_start_minus_due_ms": distribution(d.metrics.lateness),
    }


async def measure(ctx: Context, loop: str = "asyncio", every_transport: bool = True) -> dict[str, Any]:
    """The burst through the daemon and the bare clients; with ``every_transport`` False,
    only the daemon's default transport and plain aiohttp (the smoke run's uvloop rerun)."""
    count = ctx.sizes.burst_posts
    result: dict[str, Any] = {"posts": count, "concurrency": CONCURRENCY, "loop": loop}
    daemon_variants = transports.daemon_variants() if every_transport else [transports.DAEMON_DEFAULT]
    async with ReceiverProcess("fast") as rx:
        bare_runs = [await bare(rx, "aiohttp", count)]
        daemon_runs = [await daemon(ctx, rx, name, count) for name in daemon_variants]
        bare_runs += [await bare(rx, name, count) for name in transports.bare_variants() if every_transport]
    async with ReceiverProcess("aiohttp") as slow_rx:
        receiver_check = await bare(slow_rx, "aiohttp", count)
    result.update(bare_clients=bare_runs, daemon=daemon_runs, bare_aiohttp_vs_aiohttp_receiver=receiver_check)
    best_bare = max(float(b["posts_per_s"] or 0) for b in bare_runs)
    best = max(daemon_runs, key=lambda r: float(r["posts_per_s"] or 0))
    result["best_bare_posts_per_s"] = best_bare
    result["best_daemon_transport"] = best["transport"]
    result["daemon_vs_best_bare"] = round(float(best["posts_per_s"] or 0) / best_bare, 3) if best_bare else None
    return result


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    targets = []
    same_stack = {b["transport_class"]: b for b in result["bare_clients"]}
    for r in result["daemon"]:
        rate = float(r["posts_per_s"] or 0)
        ratio = rate / result["best_bare_posts_per_s"] * 100
        targets.append(target("burst", f"daemon ({r['transport']}: {r['resolved_transport']}) vs best bare client",
                              ratio, ">=", 60.0, "%",
                              f"{r['posts_per_s']} vs {result['best_bare_posts_per_s']} posts/s; "
                              f"last arrival {r['last_arrival_s']} s after due"))
        same = same_stack.get(r["resolved_transport"])
        if same and same["posts_per_s"]:
            targets.append(target(
                "burst", f"daemon ({r['transport']}) vs a bare httpx client on the same transport",
                rate / float(same["posts_per_s"]) * 100, ">=", 60.0, "%",
                f"{r['posts_per_s']} vs {same['posts_per_s']} posts/s (bare {same['client']}): the daemon's own "
                "overhead, the HTTP stack being equal"))
        targets.append(target("burst", f"duplicates ({r['transport']})", float(r["duplicates"]), "<=", 0, "posts"))
        targets.append(target("burst", f"missing ({r['transport']})", float(result["posts"] - r["arrived"]),
                              "<=", 0, "posts"))
    result["targets"] = targets
    return result
