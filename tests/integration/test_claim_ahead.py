"""A burst is claimed before its instant (engine/burst.py), and a post claimed
early is still sent exactly on its instant, with a trusted edit inside the window abandoning
its claim before anything is sent."""

from __future__ import annotations

import time
from typing import Any

from scheduler_daemon.engine.burst import BURST_AHEAD_SECONDS, BURST_POSTS
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user, row, soon


async def test_a_burst_is_claimed_before_its_instant_and_sent_on_it(db, watcher: Watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url + "/hook"})
        running = await start_daemon()
        repository = running.daemon.dispatcher.repository
        real_claim, claims = repository.claim, []

        async def claim(items: Any, **options: Any) -> Any:
            won = await real_claim(items, **options)
            claims.append((time.time(), {post.id for post in won.won}))  # when each claim's answer was back
            return won

        repository.claim = claim  # type: ignore[method-assign]
        due = soon(BURST_AHEAD_SECONDS + 2.0)  # room for the inserts before the burst's window opens
        async with db.transaction():
            posts = [await insert_post(db, campaign, due, content=f"post {n}") for n in range(BURST_POSTS + 20)]
        edited, deleted = posts[0], posts[1]
        await watcher.wait_all(posts, "publishing", timeout=BURST_AHEAD_SECONDS + 10)
        # Inside the window: a trusted writer's edit and delete abandon those claims.
        edited_at = await db.fetchval(
            "UPDATE content_posts SET content = 'after the edit' WHERE id = $1 RETURNING clock_timestamp()", edited)
        await db.execute("DELETE FROM content_posts WHERE id = $1", deleted)
        await watcher.wait_all([p for p in posts if p != deleted], "published", timeout=30)

    first: dict[Any, float] = {}
    for at, won in claims:
        for post_id in won:
            first.setdefault(post_id, at)  # the edited post is claimed again after its release
    assert set(posts) <= set(first), "every post of the burst was claimed"
    last = max(first[p] for p in posts)
    assert last < due.timestamp(), f"the burst's last claim ended {last - due.timestamp():.3f} s after its instant"
    assert min(a.wall for a in rx.arrivals) >= due.timestamp() - 0.005, "published before its instant"
    contents = [a.json()["content"] for a in rx.arrivals]
    assert len(set(contents)) == len(contents), "a post was sent twice"
    if edited_at < due:  # always, unless the machine stalled for seconds
        assert len(contents) == len(posts) - 1
        assert "after the edit" in contents and "post 0" not in contents and "post 1" not in contents
    assert (await row(db, edited))["content"] == "after the edit"
