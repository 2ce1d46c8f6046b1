"""4. Registration: INSERT commit → timer armed, and reschedules at 10,000 rows/s.

Arming: single-row INSERTs (autocommit, plain SQL), one at a time, from a connection in
the bench process; "armed" is when the daemon's notification callback returned (the
timer is in the schedule). Three starting points, all on the host's one clock:
``send`` (before the INSERT left the client), ``row written`` (``clock_timestamp()`` in
the INSERT: after parsing and planning, before the commit and its WAL flush) and ``ack``
(the client was told the commit succeeded; PostgreSQL signals the listeners at the same
point). Commit → armed is judged from the acknowledgement: what a frontend sees as
"committed"; it is negative when the daemon handled the notification before the bench
process read its own acknowledgement. The two earlier starts are upper bounds.

Reschedules: ``bench.loadgen`` in its own process UPDATEs batches of rows at the target
rate; lag is, per UPDATE, from its commit acknowledgement to the daemon handling the
last of its notifications. The daemon keeps up when the lag stays bounded to the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import asyncpg

from ..context import Context
from ..harness import RunningDaemon, bench_settings
from ..pg import INSERT_POST, insert_posts, local_parts, webhook_campaign
from ..results import distribution, target


async def _arming(d: RunningDaemon, db: asyncpg.Connection, campaign: Any, count: int) -> dict[str, Any]:
    d.probes.track_ids = True
    send_to_armed: list[float] = []
    row_to_armed: list[float] = []
    ack_to_armed: list[float] = []
    date, time_of_day = local_parts(time.time() + 3600)
    insert = INSERT_POST.replace("RETURNING id", "RETURNING id, extract(epoch FROM clock_timestamp())::float8 AS at")
    for n in range(count):
        sent = time.time()
        inserted = await db.fetchrow(insert, campaign, f"registration {n}", date, time_of_day)
        acked = time.time()
        assert inserted is not None
        armed = await asyncio.wait_for(d.probes.armed(inserted["id"]), 10)
        send_to_armed.append(armed - sent)
        row_to_armed.append(armed - inserted["at"])
        ack_to_armed.append(armed - acked)
    d.probes.track_ids = False
    return {"inserts": count, "send_to_armed_ms": distribution(send_to_armed),
            "row_written_to_armed_ms": distribution(row_to_armed),
            "ack_to_armed_ms": distribution(ack_to_armed)}


async def _reschedules(
    ctx: Context, d: RunningDaemon, dsn: str, db: asyncpg.Connection, campaign: Any
) -> dict[str, Any]:
    sizes = ctx.sizes
    d.probes.reset()
    await insert_posts(db, campaign, [time.time() + 3600 + n for n in range(sizes.reschedule_rows)])
    await d.probes.notified.reach(sizes.reschedule_rows, timeout=30)
    d.probes.reset()
    cpu = time.process_time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", dsn, "--rate", str(sizes.reschedule_rate),
        "--batch", str(sizes.reschedule_batch), "--seconds", str(sizes.reschedule_seconds),
        stdout=asyncio.subprocess.PIPE, limit=1 << 26,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.loadgen exited with status {proc.returncode}")
    report = json.loads(out)
    commits: list[tuple[float, int]] = [(float(w), int(n)) for w, n in report["commits"]]
    total = sum(n for _, n in commits)
    caught_up = await d.probes.notified.reach(total, timeout=60)
    cpu = time.process_time() - cpu
    seen = d.probes.notifications
    lags: list[float] = []
    if len(seen) == total:  # notifications come in commit order: UPDATE k's last is at a known index
        index = -1
        for wall, rows in commits:
            index += rows
            lags.append(seen[index] - wall)
    half = len(lags) // 2
    version_of = {r["id"]: r["schedule_version"] for r in await db.fetch(
        "SELECT id, schedule_version FROM content_posts WHERE status = 'scheduled'")}
    stale = sum(1 for pid, version in version_of.items()
                if (armed := d.dispatcher.timers.get(pid)) is None or armed.version != version)
    elapsed = float(report["elapsed_s"])
    return {
        "target_rate": sizes.reschedule_rate,
        "rows_per_update": sizes.reschedule_batch,
        "seconds": round(elapsed, 3),
        "rows_rescheduled": total,
        "achieved_rate": round(total / elapsed, 1),
        "notifications_handled": len(seen),
        "caught_up": caught_up,
        "lag_ms": distribution(lags),
        "lag_first_half_ms": distribution(lags[:half]),
        "lag_second_half_ms": distribution(lags[half:]),
        "final_lag_ms": round(lags[-1] * 1000, 3) if lags else None,
        "timers_not_matching_table": stale,
        "bench_process_cpu_percent": round(cpu / elapsed * 100, 1),
    }


async def measure(ctx: Context) -> dict[str, Any]:
    async with ctx.database() as dsn:
        db = await asyncpg.connect(dsn)
        try:
            campaign = await webhook_campaign(db, "http://127.0.0.1:9")
            async with RunningDaemon(dsn, bench_settings()) as d:
                arming = await _arming(d, db, campaign, ctx.sizes.registration_inserts)
                reschedules = await _reschedules(ctx, d, dsn, db, campaign)
        finally:
            await db.close()
    return {"arming": arming, "reschedules": reschedules}


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    arming, resched = result["arming"], result["reschedules"]
    rate = resched["target_rate"]
    result["targets"] = [
        target("registration", "p99 commit acknowledged → armed", arming["ack_to_armed_ms"].get("p99"), "<=", 2.0,
               "ms", f"upper bounds: p99 row written → armed {arming['row_written_to_armed_ms'].get('p99')} ms, "
               f"INSERT sent → armed {arming['send_to_armed_ms'].get('p99')} ms"),
        target("registration", f"reschedules sustained (target {rate:,}/s)", resched["achieved_rate"], ">=",
               float(rate), "rows/s", f"{resched['notifications_handled']:,} notifications handled"),
        target("registration", "p99 lag commit → re-armed under that load", resched["lag_ms"].get("p99"),
               "<=", 100.0, "ms", f"second half p99 {resched['lag_second_half_ms'].get('p99')} ms, "
               f"final {resched['final_lag_ms']} ms; timers not matching the table: "
               f"{resched['timers_not_matching_table']}"),
    ]
    return result
