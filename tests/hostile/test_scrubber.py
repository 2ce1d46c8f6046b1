"""A tenant's token is a secret of that tenant's posts only, through the real daemon.

Tenant A's connection token is the word ``retrying``. The old scrubber cut every loaded
token out of every line, so once A's post was claimed, every other tenant's "attempt 1
failed (…); retrying in …" read "[redacted] in". Now tenant B's rate-limited post, due
at the same instant, keeps its message whole; A's post is published, and a bystander's
post goes out once, on time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from scheduler_daemon.testing.receiver import Receiver, Reply
from support.helpers import Watcher, insert_post, make_user, row
from support.servers import Bystander


async def test_a_token_that_is_an_ordinary_word_is_not_cut_from_other_tenants_messages(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    limited = Reply(429, {"error": "slow down"}, headers={"Retry-After": "3600"})
    async with Receiver() as a_hook, Receiver(lambda _: limited) as b_hook, Receiver() as rx:
        tenant_a, _ = await make_user(db, "webhook", access_token="retrying", metadata={"url": a_hook.url + "/a"})
        tenant_b, _ = await make_user(db, "webhook", metadata={"url": b_hook.url + "/b"})
        bystander = Bystander(db, rx)
        await start_daemon()
        due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=800)
        a_post = await insert_post(db, tenant_a, due)
        b_post = await insert_post(db, tenant_b, due)
        await bystander.schedule(due)
        await bystander.published_once_on_time(watcher)
        await watcher.wait(a_post, "published")
        await watcher.wait_seen(b_post, "scheduled", times=2)  # inserted, then postponed
    message = (await row(db, b_post))["error_message"]
    assert message.startswith("attempt 1 failed (") and "; retrying in " in message, message
    assert "[redacted]" not in message
