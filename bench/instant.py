"""Posts of many accounts due at one instant, through the in-process daemon, timed at a fake
platform in its own process (``bench.receiver``).

Lateness is measured where users see it: when the platform received the *final* request
of a post (the webhook POST; Instagram's ``media_publish``) minus the due instant, on the
host's one clock. The accounts (a user, a campaign and a connection each) exist before the
daemon starts; the posts are inserted with plain SQL (one ``INSERT … SELECT``, one
notification per row) early enough for the daemon to arm them all before they are due.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from scheduler_daemon.config import Settings

from .context import Context
from .harness import RunningDaemon
from .pg import accounts, insert_burst
from .receiver import Arrival, ReceiverProcess
from .results import distribution


@dataclass(frozen=True)
class Burst:
    platform: str
    accounts: int
    per_account: int
    metadata: dict[str, object] = field(default_factory=dict)  # each connection's
    media: list[dict[str, str]] = field(default_factory=list)  # each post's

    @property
    def posts(self) -> int:
        return self.accounts * self.per_account


def lateness(arrivals: list[Arrival], due: float) -> dict[str, Any]:
    """Arrival − due of each key's first final request; duplicates are the repeats."""
    first: dict[str, float] = {}
    for a in arrivals:
        first[a.key] = min(a.wall, first.get(a.key, a.wall))
    late = list(first.values())
    return {
        "arrived": len(first),
        "duplicates": len(arrivals) - len(first),
        "lateness_ms": distribution([w - due for w in late]),
        "last_arrival_s": round(max(late) - due, 4) if late else None,
        "posts_per_s": round(len(first) / (max(late) - due), 1) if late and max(late) > due else None,
    }


Hook = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


async def through_daemon(
    ctx: Context, rx: ReceiverProcess, settings: Settings, burst: Burst, *, timeout: float = 600.0,
    armed_hook: Hook = _nothing, done_hook: Hook = _nothing, lead_s: float | None = None,
) -> dict[str, Any]:
    """One burst through a fresh daemon on a fresh database; its figures. ``armed_hook`` runs
    once every post is armed (before they are due), ``done_hook`` once every outcome is written.
    ``lead_s``: insert the posts this long before their instant (default: just long enough to
    arm them) and wait for their preparation ahead of it (``prepare``: how it went, and which
    calls reached the platform at and after the instant)."""
    count = burst.posts
    await rx.reset()
    async with ctx.database() as dsn:
        db = await asyncpg.connect(dsn)
        try:
            campaigns = await accounts(db, burst.accounts, burst.platform, burst.metadata)
            async with RunningDaemon(dsn, settings) as d:
                due = time.time() + (ctx.sizes.lead_s + count / 2500 if lead_s is None else lead_s)
                await insert_burst(db, campaigns, burst.per_account, due, burst.platform, burst.media)
                armed = await d.probes.notified.reach(count, timeout=max(0.0, due - time.time()))
                await armed_hook()
                margin = due - time.time()
                prepare = None if lead_s is None else await prepared_ahead(d, rx, count, due)
                cpu = time.process_time()
                complete, arrivals = await rx.wait(count, timeout=timeout)
                written = await d.probes.outcomes.reach(count, timeout=120)
                written_at = time.time()
                cpu = time.process_time() - cpu
                await done_hook()
                calls = (await rx.stats())["calls"]
                claims = [(c.asked, c.won, round((c.finished - c.started) * 1000, 2),
                           round((c.finished - due) * 1000, 1)) for c in d.probes.claims]
                statuses = {r["status"]: r["n"] for r in await db.fetch(
                    "SELECT status, count(*) AS n FROM content_posts GROUP BY status")}
                started = list(d.metrics.lateness)
        finally:
            await db.close()
    return {
        "platform": burst.platform,
        "posts": count,
        "accounts": burst.accounts,
        "concurrency": settings.concurrency,
        "armed_before_due": armed,
        "armed_margin_s": round(margin, 3),
        "complete": complete and written,
        **lateness(arrivals, due),
        "outcomes_written_s": round(written_at - due, 3),
        "statuses": statuses,
        "cpu_ms_per_post": round(cpu / count * 1000, 4),
        "calls": calls,
        "claims_asked_won_ms_end": claims,
        "publish_start_minus_due_ms": distribution(started),
        **({} if prepare is None else {"prepare": {**prepare, "calls_from_due": _minus(calls, prepare["calls"])}}),
    }


async def prepared_ahead(d: RunningDaemon, rx: ReceiverProcess, count: int, due: float) -> dict[str, Any]:
    """Wait until the daemon prepared every post or the instant came; how far it got."""
    preparer = d.daemon.preparer
    assert preparer is not None
    began = time.time()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, due - time.time() - 0.05)):
            while preparer.prepared + preparer.failed < count:
                preparer.progress.clear()
                await preparer.progress.wait()
    ended = time.time()
    return {"prepared": preparer.prepared, "failed": preparer.failed, "lost": preparer.lost,
            "seconds": round(ended - began, 2), "margin_s": round(due - ended, 2),
            "calls": (await rx.stats())["calls"]}


def _minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
