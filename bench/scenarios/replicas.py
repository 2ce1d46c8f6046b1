"""10. Replicas: a zero-latency burst delivered by one daemon process, then by two on the
same database (``scheduler-daemon run``, each its own ``SCHEDULER_INSTANCE_ID``).

Each run gets a fresh database with one webhook account, the process(es) reach READY=1,
then the posts are inserted due at one instant (early enough to be armed by every
process). Rate: posts / (last arrival at the receiver − due). Runs alternate (1, 2, 1, 2,
…) and the median of each is compared; the share each process published comes from
``publish_attempts.instance``. Logs at ``info``, written to a file: production's cost.

CPU seconds from the due instant to the last arrival (the burst), from /proc: each daemon process,
the receiver, PostgreSQL (every backend and background process of the server, from
pg_stat_activity) and the whole machine (/proc/stat; ``other`` is what none of those used:
other work on the machine). Their sum against 2 cores × the window says what was saturated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from typing import Any

import asyncpg

from ..context import Context
from ..harness import BENCH_ENV
from ..instant import lateness
from ..pg import insert_same_instant, webhook_campaign
from ..process import DaemonProcess, cpu_seconds
from ..receiver import ReceiverProcess
from ..results import target

DAEMON = [sys.executable, "-m", "scheduler_daemon.cli", "run"]


def daemon_env(dsn: str, instance: str, **extra: str) -> dict[str, str]:
    return {**BENCH_ENV, "DATABASE_URL": dsn, "SCHEDULER_INSTANCE_ID": instance, "SCHEDULER_LOG_LEVEL": "info",
            "SCHEDULER_LOG_FORMAT": "json", **extra}


async def published_count(db: asyncpg.Connection, count: int, timeout: float) -> tuple[int, float]:
    """Wait (polling the table: outcomes send no notification) until ``count`` rows are
    published or ``timeout``; (published, when)."""
    deadline = time.time() + timeout
    while True:
        done: int = await db.fetchval("SELECT count(*) FROM content_posts WHERE status = 'published'")
        if done >= count or time.time() > deadline:
            return done, time.time()
        await asyncio.sleep(0.05)


def machine_cpu_seconds() -> float:
    """Busy CPU of the whole machine so far (every core: user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


async def cpu_snapshot(db: asyncpg.Connection, groups: dict[str, int]) -> dict[str, dict[int, float]]:
    """CPU seconds so far by pid, in groups: each named process, and PostgreSQL's."""
    server = [r["pid"] for r in await db.fetch("SELECT pid FROM pg_stat_activity")]
    out: dict[str, dict[int, float]] = {}
    for name, pids in [*((n, [p]) for n, p in groups.items()), ("postgresql", server)]:
        for pid in pids:
            with contextlib.suppress(OSError):  # ended meanwhile
                out.setdefault(name, {})[pid] = cpu_seconds(pid)
    out["machine"] = {0: machine_cpu_seconds()}
    return out


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], wall: float) -> dict[str, Any]:
    """CPU seconds each group used between two snapshots (a pid new since the first counts
    from 0), ``other`` (the machine's rest) and the share of the 2 cores' capacity."""
    used = {name: round(sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items()), 3)
            for name, pids in after.items()}
    used["other"] = round(used["machine"] - sum(v for k, v in used.items() if k != "machine"), 3)
    cores = os.cpu_count() or 1
    busy = round(100 * used["machine"] / (cores * wall), 1) if wall > 0 else None
    daemons = " + ".join(str(v) for k, v in sorted(used.items()) if k.startswith("replica-"))
    summary = (f"{daemons} / {used.get('postgresql')} / {used['receiver']} / {used['other']} "
               f"({busy} % of {cores} cores over {wall:.2f} s)")
    return {"seconds": used, "window_s": round(wall, 3), "machine_busy_pct": busy, "summary": summary}


async def _run(ctx: Context, rx: ReceiverProcess, processes: int) -> dict[str, Any]:
    count = ctx.sizes.replica_posts
    await rx.reset()
    async with ctx.database() as dsn:
        db = await asyncpg.connect(dsn)
        try:
            campaign = await webhook_campaign(db, rx.url)
            async with contextlib.AsyncExitStack() as stack:
                pids = {"receiver": rx.pid}
                for n in range(processes):
                    daemon = await stack.enter_async_context(DaemonProcess(
                        DAEMON, daemon_env(dsn, f"replica-{n}"), output=ctx.work_dir / f"replica-{n}.log"))
                    pids[f"replica-{n}"] = daemon.pid
                due = time.time() + ctx.sizes.lead_s + count / 2500
                await insert_same_instant(db, campaign, due, count)
                await asyncio.sleep(max(0.0, due - time.time()))
                before = await cpu_snapshot(db, pids)
                complete, arrivals = await rx.wait(count, timeout=120)
                cpu = cpu_used(before, await cpu_snapshot(db, pids), time.time() - due)
                published, written_at = await published_count(db, count, timeout=60)
                shares = {r["instance"].split("@")[-1]: r["n"] for r in await db.fetch(
                    "SELECT instance, count(*) AS n FROM publish_attempts WHERE outcome = 'published'"
                    " GROUP BY instance ORDER BY instance")}
        finally:
            await db.close()
    return {"processes": processes, "posts": count, "complete": complete and published == count,
            **lateness(arrivals, due), "published_rows": published, "outcomes_written_s": round(written_at - due, 3),
            "published_by_instance": shares, "cpu": cpu}


async def measure(ctx: Context) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    async with ReceiverProcess("fast") as rx:
        for _ in range(ctx.sizes.replica_repeats):
            for processes in (1, 2):
                runs.append(await _run(ctx, rx, processes))
    rate = {n: statistics.median(float(r["posts_per_s"] or 0) for r in runs if r["processes"] == n) for n in (1, 2)}
    return {"posts": ctx.sizes.replica_posts, "runs": runs, "median_posts_per_s": {str(n): v for n, v in rate.items()},
            "speedup": round(rate[2] / rate[1], 3) if rate[1] else None}


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    rates = result["median_posts_per_s"]
    two = [r for r in result["runs"] if r["processes"] == 2]
    result["targets"] = [
        target("replicas", "2 processes vs 1, zero-latency burst", result["speedup"], ">=", 1.7, "×",
               f"median {rates['2']} vs {rates['1']} posts/s over {len(two)} run(s) each; "
               f"published by instance (2 processes): {[r['published_by_instance'] for r in two]}"),
        target("replicas", "duplicates (every run)", float(sum(r["duplicates"] for r in result["runs"])), "<=", 0,
               "posts"),
        target("replicas", "posts missing (every run)",
               float(sum(r["posts"] - r["arrived"] for r in result["runs"])), "<=", 0, "posts"),
    ]
    return result
