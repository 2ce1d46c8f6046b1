"""Answers no database column can hold, through the real daemon: a webhook answering
``{"id": "evil\\u0000id"}`` (PostgreSQL text refuses NUL), ``{"id": "\\ud800"}`` (a lone
surrogate: not encodable as UTF-8), an id and a URL of 200,000 characters (under the
1 MiB answer cap). Each used to fail the outcome batch it was written in, every other
tenant's outcome with it, again and again.
Now each post ends published with its answer made storable (U+FFFD for the bad
character, ids and URLs capped), and a bystander tenant due at the same instant is
delivered once, on time, and recorded published."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from scheduler_daemon.engine.clean import MAX_ID, MAX_URL
from scheduler_daemon.testing.receiver import Arrival, Receiver, Reply
from support.helpers import Watcher, insert_post, make_user, row
from support.servers import Bystander

ANSWERS: dict[str, dict[str, Any]] = {
    "nul": {"id": "evil\u0000id", "url": "https://example.test/evil\u0000"},
    "surrogate": {"id": "\ud800", "url": "https://example.test/\udfff"},
    "huge": {"id": "7" * 200_000, "url": "https://example.test/" + "a" * 200_000},
}


def hostile(arrival: Arrival) -> Reply:
    return Reply(200, ANSWERS[arrival.json()["content"]])


async def test_unstorable_answers_are_cleaned_and_never_block_another_tenants_outcome(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    async with Receiver(hostile) as evil, Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": evil.url + "/hook"})
        bystander = Bystander(db, rx)
        running = await start_daemon()
        due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=800)
        posts: dict[str, uuid.UUID] = {name: await insert_post(db, campaign, due, content=name) for name in ANSWERS}
        await bystander.schedule(due)
        await bystander.published_once_on_time(watcher)
        await watcher.wait_all(list(posts.values()), "draft", "published", timeout=15)
        assert not running.task.done(), "the daemon stopped"
    rows_ = {name: await row(db, post) for name, post in posts.items()}
    assert {n: r["status"] for n, r in rows_.items()} == dict.fromkeys(ANSWERS, "published"), rows_
    assert rows_["nul"]["platform_post_id"] == "evil\ufffdid"
    assert rows_["nul"]["platform_post_url"] == "https://example.test/evil\ufffd"
    assert rows_["surrogate"]["platform_post_id"] == "\ufffd"
    assert rows_["surrogate"]["platform_post_url"] == "https://example.test/\ufffd"
    assert rows_["huge"]["platform_post_id"] == "7" * (MAX_ID - 1) + "…"
    assert len(rows_["huge"]["platform_post_url"]) == MAX_URL
    assert len(evil.arrivals) == len(ANSWERS)  # each sent once: nothing was retried
