"""A burst is claimed before its instant (engine/burst.py), and a post claimed
early is still sent exactly on its instant, with a trusted edit inside the window abandoning
its claim before anything is sent."""

from __future__ import annotations

import time

from scheduler_daemon.engine.burst import BURST_AHEAD_SECONDS, BURST_POSTS
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user, row, soon


async def test_a_burst_is_claimed_before_its_instant_and_sent_on_it(db, watcher: Watcher, start_daemon) -> None:
    async with Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": rx.url + "/hook"})
        await start_daemon()
        due = soon(BURST_AHEAD_SECONDS + 2.0)  # room for the inserts before the burst's window opens
        async with db.transaction():
            posts = [await insert_post(db, campaign, due, content=f"post {n}") for n in range(BURST_POSTS + 20)]
        edited, deleted = posts[0], posts[1]
        await watcher.wait_all(posts, "publishing", timeout=BURST_AHEAD_SECONDS + 10)
        claimed_at = time.time()
        assert not rx.arrivals, "sent before its instant"
        # Inside the window: a trusted writer's edit and delete abandon those claims.
        await db.execute("UPDATE content_posts SET content = 'after the edit' WHERE id = $1", edited)
        await db.execute("DELETE FROM content_posts WHERE id = $1", deleted)
        await watcher.wait_all([p for p in posts if p != deleted], "published", timeout=30)

    assert claimed_at < due.timestamp(), f"the burst was claimed {claimed_at - due.timestamp():.3f} s after its instant"
    assert min(a.wall for a in rx.arrivals) >= due.timestamp() - 0.005, "published before its instant"
    contents = sorted(a.json()["content"] for a in rx.arrivals)
    assert len(contents) == len(posts) - 1 and len(set(contents)) == len(contents)
    assert "after the edit" in contents and "post 0" not in contents and "post 1" not in contents
    assert (await row(db, edited))["content"] == "after the edit"
