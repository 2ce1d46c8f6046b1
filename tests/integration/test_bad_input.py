"""Section 9: bad input gets a clear error on the row and in the log, and loses nothing."""

from __future__ import annotations

import json
import uuid

import structlog

from scheduler_daemon.testing.receiver import Receiver
from support.helpers import input_checks_off, insert_post, make_user, row, soon


async def test_every_bad_row_ends_as_draft_with_a_reason_and_others_go_out(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url})
        other_user = uuid.uuid4()
        twice = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", other_user)
        for _ in range(2):
            await db.execute(
                "INSERT INTO platform_connections (user_id, platform, metadata) VALUES ($1, 'webhook', $2::jsonb)",
                other_user, json.dumps({"url": rx.url}),
            )
        lonely = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", uuid.uuid4())
        _, strangers = await make_user(db, "webhook", metadata={"url": rx.url})
        owner = await db.fetchval("SELECT user_id FROM content_campaigns WHERE id = $1", campaign)
        log_connection = await db.fetchval(
            "INSERT INTO platform_connections (user_id, platform) VALUES ($1, 'log') RETURNING id", owner)
        # Refused at write time since migrations/004 (tests/hostile/test_write_time.py), so
        # written as rows from before it: the daemon must still end them as drafts with a
        # reason, and its own writes on them land despite the checks (which are back on).
        async with input_checks_off(db):
            old_media = await insert_post(db, campaign, soon(0.4), media='[{"alt": "a"}]')
            old_zone = await insert_post(db, campaign, soon(0.4))
            await db.execute("UPDATE content_posts SET timezone = 'Mars/Olympus' WHERE id = $1", old_zone)
        await start_daemon(max_content_chars=50)
        due = soon(0.4)
        bad = {
            "unknown platform 'myspace'": await insert_post(db, campaign, due, platform="myspace"),
            "no webhook connection for user": await insert_post(db, lonely, due),
            "has several webhook connections: set connection_id": await insert_post(db, twice, due),
            "no campaign (and so no user) and no connection_id": await insert_post(db, None, due),
            "is for 'log', but the post is for 'webhook'": await insert_post(
                db, campaign, due, connection_id=log_connection),
            "belongs to another user than the post's campaign": await insert_post(
                db, campaign, due, connection_id=strangers),
            "content is 51 characters; the most this daemon accepts is 50": await insert_post(
                db, campaign, due, content="x" * 51),
            "media[0] needs a url or a storage_path": old_media,
            "unknown timezone 'Mars/Olympus'": old_zone,
            "scheduled_date and scheduled_time are empty": await insert_post(db, campaign, None),
        }
        good = await insert_post(db, campaign, soon(0.6), content="fine")
        await watcher.wait(good, "published")
        await watcher.wait_all(list(bad.values()), "draft")
    assert [a.json()["content"] for a in rx.arrivals] == ["fine"]
    for expected, post in bad.items():
        message = (await row(db, post))["error_message"]
        assert expected in message, (expected, message)


async def test_malformed_notifications_are_logged_and_ignored(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url})
        await start_daemon()
        with structlog.testing.capture_logs() as logs:
            for payload in ("garbage", '{"op":"I"}', '{"op":"I","id":"not-a-uuid","status":"scheduled"}', "[1,2]",
                            '{"op":"U","id":"6f1b9f0e-1111-4111-8111-111111111111","status":"scheduled",'
                            '"date":"2026-02-30","time":"10:00:00","tz":"UTC","version":1}'):
                await db.execute("SELECT pg_notify('scheduler_daemon', $1)", payload)
            post = await insert_post(db, campaign, soon(0.3))
            await watcher.wait(post, "published")
    ignored = [e for e in logs if e["event"] == "ignored malformed notification"]
    assert len(ignored) == 5
    assert "not JSON" in ignored[0]["error"] and "'id' is missing" in ignored[1]["error"]
    assert len(rx.arrivals) == 1
