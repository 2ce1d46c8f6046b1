"""Threads, first comments and options through the daemon, written with plain SQL, on the
test platform ``chain`` (faked at the transport): what the row says after a partial failure,
a retry and a reschedule that resume after the last item out, and a failed first comment."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from scheduler_daemon.platforms.registry import FACTORIES
from support.helpers import insert_post, make_user, row, soon
from support.platforms.chain import ChainAdapter, ChainFake

FOUR = ["1/4 a thread", "2/4 goes on", "3/4 fails", "4/4 the end"]


async def schedule_thread(db, *, first_comment: str | None = None, options: str = "{}") -> uuid.UUID:  # type: ignore[no-untyped-def]
    campaign, _ = await make_user(db, "chain")
    post_id = await insert_post(db, campaign, soon(0.3), platform="chain", content=FOUR[0])
    thread = json.dumps([{"content": text} for text in FOUR[1:]])
    await db.execute(
        "UPDATE content_posts SET thread = $2::jsonb, first_comment = $3, platform_options = $4::jsonb WHERE id = $1",
        post_id, thread, first_comment, options,
    )
    return post_id


def state(record) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """publish_state as the frontend reads it (this connection has no JSON codec)."""
    value = record["publish_state"]
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
async def chain(start_daemon) -> ChainFake:  # type: ignore[no-untyped-def]
    fake = ChainFake()
    await start_daemon(transport=httpx.MockTransport(fake.handle), adapters=(*FACTORIES, ChainAdapter))
    return fake


async def test_a_failure_at_item_3_is_retried_from_item_3(db, watcher, chain: ChainFake) -> None:  # type: ignore[no-untyped-def]
    chain.fail = {FOUR[2]: "transient"}
    post_id = await schedule_thread(db)
    await watcher.wait(post_id, "published")
    r = await row(db, post_id)
    assert [p["text"] for p in chain.posts] == FOUR and [p.get("reply_to") for p in chain.posts] == [
        None, "p1", "p2", "p3"]
    assert (r["platform_post_id"], r["platform_post_url"], r["error_message"]) == (
        "p1", "https://chain.test/@me/p1", None)
    assert [i["id"] for i in state(r)["items"]] == ["p1", "p2", "p3"]
    attempts = await db.fetch("SELECT outcome, error_message FROM publish_attempts WHERE post_id = $1 ORDER BY attempt",
                              post_id)
    assert [a["outcome"] for a in attempts] == ["retry", "published"]
    assert attempts[0]["error_message"].startswith(
        "thread incomplete: items 1–2 are out of 4 (1: https://chain.test/@me/p1, 2: https://chain.test/@me/p2);"
        " item 3: attempt 1 failed (Chain server error: try later); retrying in")


async def test_a_rejected_item_3_leaves_a_draft_that_says_what_is_out_and_a_reschedule_resumes(
    db, watcher, chain: ChainFake,  # type: ignore[no-untyped-def]
) -> None:
    chain.fail = {FOUR[2]: "content"}
    post_id = await schedule_thread(db)
    await watcher.wait(post_id, "draft")
    r = await row(db, post_id)
    assert r["error_message"] == (
        "thread incomplete: items 1–2 are out of 4 (1: https://chain.test/@me/p1, 2: https://chain.test/@me/p2);"
        " item 3: Chain rejected the post: this text is not allowed. Scheduling the post again resumes at item 3"
    )
    assert (r["platform_post_id"], r["platform_post_url"]) == ("p1", "https://chain.test/@me/p1")
    assert [i["url"] for i in state(r)["items"]] == ["https://chain.test/@me/p1", "https://chain.test/@me/p2"]

    # The user fixes item 3 and schedules the post again (a new date, time and status): the
    # reschedule empties publish_state, but what is out stays out.
    fixed = json.dumps([{"content": FOUR[1]}, {"content": "3/4 fixed"}, {"content": FOUR[3]}])
    due = soon(0.3)
    await db.execute(
        "UPDATE content_posts SET thread = $2::jsonb, status = 'scheduled', scheduled_date = $3, scheduled_time = $4"
        " WHERE id = $1", post_id, fixed, due.date(), due.time().replace(tzinfo=None),
    )
    assert list(state(await row(db, post_id))) == ["items"]
    await watcher.wait(post_id, "published")
    assert [p["text"] for p in chain.posts] == [*FOUR[:2], "3/4 fixed", FOUR[3]]
    assert chain.posts[2]["reply_to"] == "p2"
    r = await row(db, post_id)
    assert (r["platform_post_id"], r["error_message"]) == ("p1", None)


async def test_a_failed_first_comment_leaves_the_post_published_with_a_notice(
    db, watcher, chain: ChainFake,  # type: ignore[no-untyped-def]
) -> None:
    chain.fail = {"first!": "content"}
    post_id = await schedule_thread(db, first_comment="first!", options='{"notify": true}')
    await watcher.wait(post_id, "published")
    r = await row(db, post_id)
    rejected = "Chain rejected the post: this text is not allowed"
    assert r["error_message"] == f"published, but the first comment failed: {rejected}"
    assert state(r)["first_comment"] == {"error": rejected}
    assert r["platform_post_id"] == "p1" and len(chain.posts) == 4 and chain.comments == []
    assert all(p["notify"] is True for p in chain.posts)


async def test_a_first_comment_goes_out_under_the_post(db, watcher, chain: ChainFake) -> None:  # type: ignore[no-untyped-def]
    post_id = await schedule_thread(db, first_comment="first!")
    await watcher.wait(post_id, "published")
    r = await row(db, post_id)
    assert chain.comments == [{"text": "first!", "on": "p1", "id": "c1"}] and r["error_message"] is None
    assert state(r)["first_comment"] == {"id": "c1", "url": "https://chain.test/@me/p1#c1"}


async def test_an_unknown_option_ends_as_a_draft_naming_the_options(db, watcher, chain: ChainFake) -> None:  # type: ignore[no-untyped-def]
    post_id = await schedule_thread(db, options='{"notfy": true}')
    await watcher.wait(post_id, "draft")
    assert (await row(db, post_id))["error_message"] == (
        "platform_options: Chain has no option 'notfy'; it takes audience, notify")
    assert chain.requests == []
