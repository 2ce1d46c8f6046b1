"""Fair slots, through the real daemon: one tenant's backlog is paced on its own account
and never holds the slots another tenant's post needs.

Tenant A schedules a backlog on one webhook account whose endpoint holds every request
until the test releases it; a bystander tenant's post is due at the same instant. While
A's requests are held (the backlog being paced), the bystander's post must go out once,
on time. Synchronised on the held requests, never on sleeps; the only timing bound is the
bystander's generous second."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from scheduler_daemon.config import Settings
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user
from support.servers import Bystander, Server

HOLD_CAP_SECONDS = 30.0  # a held request is answered at the latest then, so a failing test ends


class Held:
    """A webhook endpoint that answers nothing until ``release`` is set."""

    def __init__(self) -> None:
        self.in_flight = self.peak = self.arrived = 0
        self.release = asyncio.Event()
        self._changed = asyncio.Condition()

    async def hook(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        async with self._changed:
            self.arrived += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._changed.notify_all()
        try:
            async with asyncio.timeout(HOLD_CAP_SECONDS):
                await self.release.wait()
        finally:
            self.in_flight -= 1
        return web.json_response({"id": f"held-{uuid.uuid4().hex[:8]}"})

    async def until_in_flight(self, n: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.in_flight >= n)


async def backlog_and_bystander(
    db: asyncpg.Connection, watcher: Watcher, held: Held, server: Server, rx: Receiver, posts: int, expected: int
) -> None:
    """A's ``posts`` and the bystander's post due together; while A has ``expected`` in
    flight (the pacing limit) and the rest waits, the bystander is published on time."""
    campaign, _ = await make_user(db, "webhook", metadata={"url": server.url + "/hook"})
    bystander = Bystander(db, rx)
    due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=800)
    backlog = [await insert_post(db, campaign, due, content=f"backlog {n}") for n in range(posts)]
    await bystander.schedule(due)
    try:
        await held.until_in_flight(expected)
        await bystander.published_once_on_time(watcher)
        assert (held.in_flight, held.arrived) == (expected, expected), "the pacing limit let more through"
    finally:
        held.release.set()
    await watcher.wait_all(backlog, "published", timeout=20)
    assert (held.peak, held.arrived) == (expected, posts)


async def test_a_backlog_on_one_account_is_paced_at_five_and_a_bystander_is_on_time(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """Default settings: webhook posts get 5 in flight per account."""
    held = Held()
    async with Server(routes={"/hook": held.hook}) as server, Receiver() as rx:
        await start_daemon()
        await backlog_and_bystander(db, watcher, held, server, rx, posts=8, expected=5)


async def test_posts_waiting_for_their_account_hold_no_global_slot(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any, settings_: Settings
) -> None:
    """Two global slots and one request in flight per webhook account: A's first post holds
    one slot; its five others wait for the account without a slot, so the bystander takes
    the second at once. (They used to wait holding slots: the bystander waited for A.)
    Small limits, set through the real settings, make the head-of-line case with 7 posts."""
    held = Held()
    platforms = dataclasses.replace(settings_.platforms, account_concurrency={"webhook": 1})
    async with Server(routes={"/hook": held.hook}) as server, Receiver() as rx:
        await start_daemon(concurrency=2, platforms=platforms)
        await backlog_and_bystander(db, watcher, held, server, rx, posts=6, expected=1)
