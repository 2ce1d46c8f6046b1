"""The chaos suite (issue 4, point 8): bounded in time, part of the default run.

* 2,000 posts due within about a minute, written by a "frontend" in batches while the
  daemons run;
* two daemon *processes* (``scheduler-daemon run``) on one database, as on two VMs, each
  with its own fixed ``SCHEDULER_INSTANCE_ID`` (``CHAOS_INSTANCE_IDS=fresh`` gives every
  restart a new id instead, like the default ``host:pid``);
* a fake platform (tests/chaos/platform.py) answering about 10% of requests with a 500, a
  429 (Retry-After: 1) or no answer at all;
* a random daemon SIGKILLed every few seconds and restarted at once (as systemd would);
* one PostgreSQL restart, on a dedicated embedded server (the session server is untouched).

At the end every post is either published exactly once (the platform's own record, by
Idempotency-Key, proves it), or 'draft' with a reason — an "outcome unknown" draft may have
reached the platform at most once; nothing is 'scheduled' in the past or 'publishing'; both
daemons stop with status 0 on SIGTERM. The counts are printed (``pytest -s`` shows them;
they are also in the assertion message when something fails).

Knobs (environment): CHAOS_SEED, CHAOS_POSTS (2000), CHAOS_SPREAD_SECONDS (60),
CHAOS_INSTANCE_IDS (same | fresh).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from scheduler_daemon.due import due_instant
from scheduler_daemon.errors import InvalidScheduleError
from scheduler_daemon.models import ScheduleKey
from support.chaos_platform import FakePlatform
from support.helpers import local
from support.pg import dedicated_server
from support.procs import DaemonProcess

UTC = dt.timezone.utc
POSTS = int(os.environ.get("CHAOS_POSTS", "2000"))
SPREAD = float(os.environ.get("CHAOS_SPREAD_SECONDS", "60"))
SAME_IDS = os.environ.get("CHAOS_INSTANCE_IDS", "same") != "fresh"
USERS = 25
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
BUDGET = 225.0  # seconds: the whole test, setup to teardown, stays under 4 minutes

DAEMON_ENV = dict(
    SCHEDULER_HEARTBEAT_SECONDS="0.5",
    SCHEDULER_HEARTBEAT_TIMEOUT_SECONDS="1",
    SCHEDULER_HTTP_TIMEOUT_SECONDS="2",
    SCHEDULER_RECOVERY_AFTER_SECONDS="3",
    SCHEDULER_RETRY_BASE_SECONDS="0.5",
    SCHEDULER_RETRY_MAX_SECONDS="3",
    SCHEDULER_MAX_ATTEMPTS="5",
    SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS="5",
    SCHEDULER_CONCURRENCY="100",
    SCHEDULER_LOG_LEVEL="info",
)


class Replica:
    """One 'VM': a daemon process under a supervisor that restarts it whenever it exits, as
    systemd's Restart=always would. Exits we caused (SIGKILL) are expected; an exit before
    "ready" is a failed start (e.g. the database was down); any other exit is a crash."""

    def __init__(self, name: str, dsn: str, logs: Path) -> None:
        self.name = name
        self.dsn = dsn
        self.logs = logs
        self.generation = 0
        self.proc = self._new()
        self.kills = 0
        self.failed_starts = 0
        self.crashes: list[str] = []
        self.ready = asyncio.Event()
        self.stopping = False
        self._killed = False

    def _new(self) -> DaemonProcess:
        self.generation += 1
        instance = self.name if SAME_IDS else f"{self.name}-{self.generation}"
        return DaemonProcess(self.dsn, instance, self.logs, **DAEMON_ENV)

    async def supervise(self) -> None:
        first = True
        while not self.stopping:
            if not first and not SAME_IDS:
                self.proc = self._new()
            first = False
            self.ready.clear()
            await self.proc.start()
            try:
                await self.proc.wait_ready(timeout=60)
                self.ready.set()
            except RuntimeError:
                self.failed_starts += 1
                await asyncio.sleep(0.5)  # systemd's RestartSec
                continue
            code = await self.proc.wait(timeout=3600)
            if self.stopping:
                return
            if self._killed:
                self._killed = False
            else:
                self.crashes.append(f"{self.proc.instance_id} exited {code} ({self.proc.log_path})")
            await asyncio.sleep(0.5)  # systemd's RestartSec

    def kill(self) -> None:
        if self.proc.alive and self.ready.is_set():
            self._killed = True
            self.proc.kill()
            self.kills += 1


def due_of(r: asyncpg.Record) -> dt.datetime | None:
    try:
        return due_instant(ScheduleKey(r["scheduled_date"], r["scheduled_time"], r["timezone"], r["retry_at"]))
    except InvalidScheduleError:
        return None


def reason_of(message: str | None) -> str:
    text = (message or "").strip()
    for prefix in ("outcome unknown", "gave up", "missed", "internal error"):
        if text.startswith(prefix) or prefix in text[:80]:
            return prefix
    return text[:50] or "<empty>"


async def test_chaos(capsys: Any) -> None:
    seed = int(os.environ.get("CHAOS_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    began = time.monotonic()
    deadline = began + BUDGET
    directory = Path(tempfile.mkdtemp(prefix="scheduler-daemon-chaos-"))
    logs = directory / "logs"
    logs.mkdir()
    counts: dict[str, Any] = {"seed": seed, "instance_ids": "same" if SAME_IDS else "fresh"}
    violations: list[str] = []
    try:
        (directory / "pg").mkdir()
        with dedicated_server(directory / "pg") as server:
            dsn = await server.database("chaos")
            async with FakePlatform(seed=seed) as platform:
                db = await asyncpg.connect(dsn)
                campaigns = []
                for _ in range(USERS):
                    user = uuid.uuid4()
                    campaign = await db.fetchval(
                        "INSERT INTO content_campaigns (user_id, name) VALUES ($1, 'chaos') RETURNING id", user)
                    await db.execute(
                        "INSERT INTO platform_connections (user_id, platform, account_id, access_token, metadata)"
                        " VALUES ($1, 'webhook', 'acct', $2, $3::jsonb)",
                        user, f"whsec-chaos-{uuid.uuid4().hex}", json.dumps({"url": platform.url}))
                    campaigns.append(campaign)
                await db.close()

                replicas = [Replica("vm-a", dsn, logs), Replica("vm-b", dsn, logs)]
                supervisors = [asyncio.create_task(r.supervise()) for r in replicas]
                async with asyncio.timeout(60):
                    await asyncio.gather(*(r.ready.wait() for r in replicas))

                first_due = dt.datetime.now(UTC) + dt.timedelta(seconds=8)
                last_due = first_due + dt.timedelta(seconds=SPREAD)
                ids = await _write_posts(dsn, campaigns, first_due, rng)
                counts["posts"] = len(ids)
                t_first = time.monotonic() + (first_due - dt.datetime.now(UTC)).total_seconds()

                chaos_end = t_first + SPREAD
                db_restart_at = t_first + SPREAD * 0.4
                killer = asyncio.create_task(_killer(replicas, rng, chaos_end))
                restarter = asyncio.create_task(_restart_db(server, db_restart_at))
                await asyncio.gather(killer, restarter)
                counts["db_restarts"] = 1

                settled = await _settle(dsn, deadline - 25)
                counts["settled_after_last_due_s"] = round(time.monotonic() - chaos_end, 1) if settled else None

                exit_codes: dict[str, Any] = {}
                for r in replicas:
                    r.stopping = True
                    if r.proc.alive:
                        r.proc.signal(15)
                for r in replicas:
                    try:
                        exit_codes[r.name] = await r.proc.wait(timeout=15)
                    except TimeoutError:
                        r.proc.kill()
                        exit_codes[r.name] = "timeout"
                for task in supervisors:
                    task.cancel()
                await asyncio.gather(*supervisors, return_exceptions=True)
                counts["sigterm_exit_codes"] = exit_codes
                counts["kills"] = sum(r.kills for r in replicas)
                counts["failed_starts"] = sum(r.failed_starts for r in replicas)
                crashes = [c for r in replicas for c in r.crashes]
                counts["crashes"] = len(crashes)

                db = await asyncpg.connect(dsn)
                try:
                    rows = await db.fetch(
                        "SELECT id, status, error_message, platform_post_id, scheduled_date, scheduled_time,"
                        " timezone, retry_at, published_at, claimed_by FROM content_posts")
                    attempts = await db.fetch("SELECT post_id, outcome FROM publish_attempts")
                finally:
                    await db.close()
                records = dict(platform.records)
                counts["deliveries"] = dict(platform.counts) | {"total": sum(platform.counts.values())}

            violations += [f"daemon crashed (exited by itself): {c}" for c in crashes]
            violations += _check(rows, records, attempts, counts, last_due)
            if any(code != 0 for code in exit_codes.values()):
                violations.append(f"SIGTERM exit codes {exit_codes} (expected 0)")
            log_levels: Counter[str] = Counter()
            for path in logs.glob("*.log"):
                for line in path.read_bytes().splitlines():
                    try:
                        log_levels[json.loads(line).get("level", "?")] += 1
                    except ValueError:
                        log_levels["<not json>"] += 1
            counts["daemon_log_lines"] = dict(log_levels)
    finally:
        counts["elapsed_s"] = round(time.monotonic() - began, 1)
        with capsys.disabled():
            print("\nchaos counts: " + json.dumps(counts, indent=1, default=str))
            if violations:
                print(f"chaos violations ({len(violations)}):\n  " + "\n  ".join(violations[:40]))
                print(f"daemon logs kept in {logs}")
        if not violations:
            shutil.rmtree(directory, ignore_errors=True)
    assert counts["elapsed_s"] < 240, f"the chaos suite took {counts['elapsed_s']} s (budget 240 s)"
    assert not violations, f"{len(violations)} violations; counts {json.dumps(counts, default=str)}; first: " + \
        "; ".join(violations[:10])


async def _write_posts(
    dsn: str, campaigns: list[uuid.UUID], first_due: dt.datetime, rng: random.Random
) -> list[uuid.UUID]:
    """The frontend: posts in batches of 200, each batch one transaction, while daemons run."""
    conn = await asyncpg.connect(dsn)
    ids: list[uuid.UUID] = []
    try:
        for start in range(0, POSTS, 200):
            batch = range(start, min(POSTS, start + 200))
            cols: list[list[Any]] = [[], [], [], [], []]
            for n in batch:
                due = first_due + dt.timedelta(seconds=rng.uniform(0, SPREAD))
                tz = ZONES[n % len(ZONES)]
                date, at = local(due, tz)
                for col, value in zip(cols, (rng.choice(campaigns), f"chaos {n}", date, at, tz), strict=True):
                    col.append(value)
            ids += [r["id"] for r in await conn.fetch(
                "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date,"
                " scheduled_time, timezone) SELECT c, 'webhook', t, 'scheduled', d, tm, z"
                " FROM unnest($1::uuid[], $2::text[], $3::date[], $4::time[], $5::text[]) AS u(c, t, d, tm, z)"
                " RETURNING id", *cols)]
    finally:
        await conn.close()
    return ids


async def _killer(replicas: list[Replica], rng: random.Random, until: float) -> None:
    """SIGKILL a random running daemon every 3-7 s; its supervisor restarts it at once."""
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(3.0, 7.0))  # chaos cadence, not synchronisation
        if time.monotonic() >= until:
            break
        rng.choice(replicas).kill()


async def _restart_db(server: Any, at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))  # when the fault happens
    await server.astop("fast")
    await asyncio.sleep(2.0)  # how long the database stays down
    await server.astart()


async def _settle(dsn: str, deadline: float) -> bool:
    """Poll until no row is 'publishing' or 'scheduled' (retries drain, orphans resolve)."""
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(dsn)
            try:
                left = await conn.fetchval(
                    "SELECT count(*) FROM content_posts WHERE status IN ('scheduled', 'publishing')")
            finally:
                await conn.close()
            if left == 0:
                return True
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.5)
    return False


def _check(rows: list[asyncpg.Record], records: dict[str, Any], attempts: list[asyncpg.Record],
           counts: dict[str, Any], last_due: dt.datetime) -> list[str]:
    violations: list[str] = []
    now = dt.datetime.now(UTC)
    by_status: Counter[str] = Counter(r["status"] for r in rows)
    drafts: Counter[str] = Counter(reason_of(r["error_message"]) for r in rows if r["status"] == "draft")
    duplicates = {key: rec.outcomes for key, rec in records.items() if rec.possible > 1}
    known = {str(r["id"]) for r in rows}
    published_audit = Counter(str(a["post_id"]) for a in attempts if a["outcome"] == "published")
    lateness = []
    for r in rows:
        key = str(r["id"])
        rec = records.get(key)
        possible = rec.possible if rec else 0
        accepted = rec.accepted if rec else 0
        trail = rec.outcomes if rec else []
        if r["status"] == "published":
            if accepted != 1 or possible != 1:
                violations.append(f"{key} published but the platform saw {trail}")
            if r["platform_post_id"] != f"pp-{key}":
                violations.append(f"{key} published with platform_post_id {r['platform_post_id']!r}")
            if published_audit[key] != 1:
                violations.append(f"{key} has {published_audit[key]} 'published' audit rows")
            due = due_of(r)
            if due is not None and r["published_at"] is not None:
                lateness.append((r["published_at"] - due).total_seconds())
        elif r["status"] == "draft":
            reason = reason_of(r["error_message"])
            if reason == "<empty>":
                violations.append(f"{key} draft without a reason")
            elif reason == "outcome unknown" or reason == "internal error":
                if possible > 1:
                    violations.append(f"{key} draft ({reason}) but reached the platform {possible} times: {trail}")
            elif possible > 0:
                violations.append(
                    f"{key} draft ({r['error_message'][:60]!r}) yet the platform may have published: {trail}"
                )
        elif r["status"] == "publishing":
            violations.append(f"{key} stuck in 'publishing' (claimed_by {r['claimed_by']})")
        elif r["status"] == "scheduled":
            due = due_of(r)
            if due is None or due < now:
                violations.append(f"{key} still 'scheduled' for {due} (in the past)")
        else:
            violations.append(f"{key} has status {r['status']!r}")
    for key in records.keys() - known:
        violations.append(f"the platform got a request for unknown post {key}")
    counts["published"] = by_status.get("published", 0)
    counts["by_status"] = dict(by_status)
    counts["draft_by_reason"] = dict(drafts)
    counts["duplicates"] = len(duplicates)
    if lateness:
        lateness.sort()
        counts["lateness_s"] = {
            "p50": round(statistics.median(lateness), 3),
            "p99": round(lateness[int(len(lateness) * 0.99) - 1], 3),
            "max": round(lateness[-1], 3),
        }
    del last_due
    return violations
