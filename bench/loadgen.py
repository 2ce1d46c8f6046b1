"""Reschedules at a fixed rate, from its own process (as a frontend would).

``python -m bench.loadgen DSN --rate R --batch B --seconds S``: every B/R seconds one
plain-SQL UPDATE moves B scheduled posts by a millisecond (each row: one NOTIFY), for S
seconds, one connection, in order. It prints one JSON line: the wall time each UPDATE's
commit was acknowledged and how many rows it changed. ``synchronous_commit`` is off for
its session: the load generator, not the daemon, would otherwise wait on fsync.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import asyncpg

RESCHEDULE = (
    "UPDATE content_posts SET scheduled_time = scheduled_time + interval '1 millisecond'"
    " WHERE id = ANY($1::uuid[])"
)


async def main(dsn: str, rate: int, batch: int, seconds: float) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        ids: list[uuid.UUID] = [r["id"] for r in await conn.fetch(
            "SELECT id FROM content_posts WHERE status = 'scheduled' ORDER BY id")]
        batches = max(1, int(rate * seconds / batch))
        period = batch / rate
        commits: list[tuple[float, int]] = []
        start = time.perf_counter()
        for n in range(batches):
            pause = start + n * period - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            chosen = [ids[(n * batch + k) % len(ids)] for k in range(batch)]
            status = await conn.execute(RESCHEDULE, chosen)
            commits.append((time.time(), int(status.split()[-1])))
        elapsed = time.perf_counter() - start
    finally:
        await conn.close()
    print(json.dumps({"commits": commits, "elapsed_s": elapsed}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dsn")
    parser.add_argument("--rate", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.dsn, args.rate, args.batch, args.seconds))
