"""The daemon driven the way a frontend drives it: plain SQL in, posts out at their instant."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import uuid

import asyncpg

from scheduler_daemon.testing.receiver import Arrival, Receiver, Reply
from support.helpers import Watcher, insert_post, make_user, row, soon

TOKEN = "whsec-test-token-123"


async def webhook_user(db: asyncpg.Connection, receiver: Receiver, path: str = "/hook") -> uuid.UUID:
    campaign, _ = await make_user(db, "webhook", access_token=TOKEN, metadata={"url": receiver.url + path})
    return campaign


def signed(arrival: Arrival) -> bool:
    expected = "sha256=" + hmac.new(TOKEN.encode(), arrival.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(arrival.headers.get("x-scheduler-signature", ""), expected)


async def test_insert_publishes_at_the_instant_with_a_signed_webhook(db, watcher: Watcher, start_daemon) -> None:
    async with Receiver(lambda a: Reply(200, {"id": "ext-42", "url": "https://example.test/p/42"})) as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon()
        due = soon(0.5)
        post = await insert_post(db, campaign, due, content="launch day")
        [arrival] = await rx.wait_for(1)
        await watcher.wait(post, "published")

    assert arrival.wall >= due.timestamp() - 0.005, "published before its instant"
    assert signed(arrival)
    assert arrival.headers["idempotency-key"] == str(post)
    body = arrival.json()
    assert body["post_id"] == str(post) and body["content"] == "launch day"
    assert body["platform"] == "webhook" and body["campaign_id"] == str(campaign)
    assert dt.datetime.fromisoformat(body["scheduled_at"]) == due.replace(microsecond=due.microsecond)
    r = await row(db, post)
    assert (r["status"], r["platform_post_id"], r["platform_post_url"]) == ("published", "ext-42", "https://example.test/p/42")
    assert r["published_at"] is not None and r["error_message"] is None
    attempts = await db.fetch("SELECT * FROM publish_attempts WHERE post_id = $1", post)
    assert [(a["attempt"], a["outcome"], a["platform_post_id"]) for a in attempts] == [(1, "published", "ext-42")]


async def test_reschedule_rearms_and_publishes_once_at_the_new_time(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon()
        post = await insert_post(db, campaign, soon(0.4))
        later = soon(1.2)
        await db.execute(
            "UPDATE content_posts SET scheduled_date = $2, scheduled_time = $3 WHERE id = $1",
            post, later.date(), later.time().replace(tzinfo=None),
        )
        await watcher.wait(post, "published")
        assert len(rx.arrivals) == 1
        assert rx.arrivals[0].wall >= later.timestamp() - 0.005


async def test_cancel_and_delete_disarm(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon()
        cancelled = await insert_post(db, campaign, soon(0.4), content="cancelled")
        deleted = await insert_post(db, campaign, soon(0.4), content="deleted")
        await db.execute("UPDATE content_posts SET status = 'draft' WHERE id = $1", cancelled)
        await db.execute("DELETE FROM content_posts WHERE id = $1", deleted)
        sentinel = await insert_post(db, campaign, soon(0.8), content="sentinel")
        await watcher.wait(sentinel, "published")
    assert [a.json()["content"] for a in rx.arrivals] == ["sentinel"]
    assert (await row(db, cancelled))["status"] == "draft"


async def test_bulk_insert_in_one_transaction(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon()
        due = soon(0.6)
        async with db.transaction():
            ids = [await insert_post(db, campaign, due, content=f"bulk {n}") for n in range(40)]
        await watcher.wait_all(ids, "published")
    assert sorted(a.json()["post_id"] for a in rx.arrivals) == sorted(map(str, ids))


async def test_boot_loads_catches_up_within_grace_and_rejects_missed(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign = await webhook_user(db, rx)
        now = dt.datetime.now(dt.timezone.utc)
        future = await insert_post(db, campaign, now + dt.timedelta(seconds=1), content="future")
        overdue = await insert_post(db, campaign, now - dt.timedelta(minutes=10), content="overdue")
        missed = await insert_post(db, campaign, now - dt.timedelta(hours=2), content="missed")
        await start_daemon()
        await watcher.wait_all([future, overdue], "published")
        await watcher.wait(missed, "draft")
    assert sorted(a.json()["content"] for a in rx.arrivals) == ["future", "overdue"]
    message = (await row(db, missed))["error_message"]
    assert message.startswith("missed:") and "2 h" in message and "grace window 1 h" in message


async def test_post_inserted_in_the_past_follows_the_grace_rule(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon(grace_seconds=60)
        now = dt.datetime.now(dt.timezone.utc)
        late_ok = await insert_post(db, campaign, now - dt.timedelta(seconds=30))
        too_late = await insert_post(db, campaign, now - dt.timedelta(minutes=5))
        await watcher.wait(late_ok, "published")
        await watcher.wait(too_late, "draft")
    assert [a.json()["post_id"] for a in rx.arrivals] == [str(late_ok)]


async def test_two_daemons_publish_each_post_exactly_once(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon(instance_id="a")
        await start_daemon(instance_id="b")
        due = soon(0.6)
        ids = [await insert_post(db, campaign, due + dt.timedelta(milliseconds=20 * n)) for n in range(30)]
        await watcher.wait_all(ids, "published")
    delivered = [a.json()["post_id"] for a in rx.arrivals]
    assert sorted(delivered) == sorted(map(str, ids)), "a post went out twice or never"
    instances = {r["instance"].split("@")[1] for r in await db.fetch("SELECT instance FROM publish_attempts")}
    assert instances <= {"a", "b"}


async def test_a_refusal_is_retried_then_published(db, watcher, start_daemon) -> None:
    replies = iter([Reply(429, {"error": "slow down"}), Reply(200, {"id": "after-retry"})])
    async with Receiver(lambda a: next(replies)) as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon()
        post = await insert_post(db, campaign, soon(0.3))
        await watcher.wait(post, "published")
    assert len(rx.arrivals) == 2
    outcomes = [r["outcome"] for r in await db.fetch(
        "SELECT outcome FROM publish_attempts WHERE post_id = $1 ORDER BY id", post)]
    assert outcomes == ["retry", "published"]
    assert (await row(db, post))["platform_post_id"] == "after-retry"


async def test_a_server_error_to_the_post_is_an_unknown_outcome_never_resent(db, watcher, start_daemon) -> None:
    """A 5xx may come after the receiver processed the post (a gateway in front of it)."""
    async with Receiver(lambda a: Reply(503, {"error": "busy"})) as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon()
        post = await insert_post(db, campaign, soon(0.3))
        await watcher.wait(post, "draft")
    assert len(rx.arrivals) == 1
    message = (await row(db, post))["error_message"]
    assert message.startswith("outcome unknown") and "check webhook before rescheduling" in message


async def test_rejection_and_lost_answer_end_as_draft_with_a_reason(db, watcher, start_daemon) -> None:
    def reply(a: Arrival) -> Reply:
        return Reply(hang=True) if a.json()["content"] == "hang" else Reply(422, {"error": "no cats allowed"})

    async with Receiver(reply) as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon(http_timeout_seconds=0.5)
        rejected = await insert_post(db, campaign, soon(0.3), content="cats")
        lost = await insert_post(db, campaign, soon(0.3), content="hang")
        await watcher.wait_all([rejected, lost], "draft")
    assert "no cats allowed" in (await row(db, rejected))["error_message"]
    message = (await row(db, lost))["error_message"]
    assert message.startswith("outcome unknown") and "check webhook before rescheduling" in message
    assert len(rx.arrivals) == 2, "an unknown outcome must not be retried"


async def test_notification_payload_is_small(db) -> None:
    got: asyncio.Queue[str] = asyncio.Queue()
    await db.add_listener("scheduler_daemon", lambda *a: got.put_nowait(a[3]))
    campaign, _ = await make_user(db)
    post = await insert_post(db, campaign, soon(3600), tz="America/Argentina/ComodRivadavia")
    async with asyncio.timeout(5):
        payload = await got.get()
    data = json.loads(payload)
    assert data["op"] == "I" and data["id"] == str(post) and data["status"] == "scheduled"
    assert data["tz"] == "America/Argentina/ComodRivadavia" and len(payload) < 400


async def test_edits_inside_the_claim_lead_window_abandon_the_claim(db, watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign = await webhook_user(db, rx)
        await start_daemon(claim_lead_seconds=1.0)  # a wide window, so the test can act inside it
        edited = await insert_post(db, campaign, soon(1.2), content="before the edit")
        cancelled = await insert_post(db, campaign, soon(1.2), content="cancelled")
        deleted = await insert_post(db, campaign, soon(1.2), content="deleted")
        await watcher.wait_all([edited, cancelled, deleted], "publishing")  # claimed ahead, not sent
        await db.execute("UPDATE content_posts SET content = 'after the edit' WHERE id = $1", edited)
        await db.execute("UPDATE content_posts SET status = 'draft' WHERE id = $1", cancelled)
        await db.execute("DELETE FROM content_posts WHERE id = $1", deleted)
        await watcher.wait(edited, "published")
    assert [a.json()["content"] for a in rx.arrivals] == ["after the edit"]
    assert (await row(db, cancelled))["status"] == "draft"
