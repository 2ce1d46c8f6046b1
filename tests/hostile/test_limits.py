"""Answers a tenant's endpoint can turn against the daemon, through the real daemon: one
that trickles, answers of 300 MiB (plain, as media, and as a gzip bomb), attempts that
outlast SCHEDULER_ATTEMPT_TIMEOUT_SECONDS before and after a publishing request, and text
meant for the error message. Each ends within its deadline, in memory the caps bound, as
a draft or a retry with a reason; a bystander tenant's post goes out once, on time."""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zlib
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from scheduler_daemon.testing.receiver import Receiver, Reply
from support.helpers import Watcher, insert_post, make_user, row
from support.procs import DaemonProcess
from support.servers import Bystander, Mastodon, Server, endless, trickle

MIB = 1024 * 1024


def soon(ms: int = 500) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=ms)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS; returns that RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kib(pid, "VmRSS")


async def gzip_bomb(request: web.Request) -> web.StreamResponse:
    """1 GiB of zeros as about 1 MiB of gzip, compressed while it is sent."""
    await request.read()
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    packer, zeros = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(MIB)
    try:
        for _ in range(1024):
            await response.write(packer.compress(zeros))
        await response.write(packer.flush())
    except (ConnectionError, RuntimeError):
        pass
    return response


async def attempts(db: asyncpg.Connection, post: uuid.UUID) -> list[asyncpg.Record]:
    return list(await db.fetch(
        "SELECT outcome, error_message, extract(epoch FROM finished_at - started_at)::float8 AS seconds"
        " FROM publish_attempts WHERE post_id = $1 ORDER BY attempt", post))


async def test_trickling_and_huge_answers_end_within_the_deadline_in_bounded_memory(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, tmp_path: Path
) -> None:
    """A daemon process of its own, with the default settings (a 30 s request deadline),
    its peak RSS reset once it is ready and read when every hostile post has ended."""
    routes = {"/trickle": trickle, "/huge": endless("application/json"), "/bomb": gzip_bomb,
              "/image.png": endless("image/png")}
    async with Server(routes=routes) as hostile, Mastodon() as instance, Receiver() as rx:
        hooks = {name: (await make_user(db, "webhook", metadata={"url": f"{hostile.url}/{name}"}))[0]
                 for name in ("trickle", "huge", "bomb")}
        mastodon, _ = await make_user(db, "mastodon", metadata={"instance_url": instance.url})
        bystander = Bystander(db, rx)
        proc = DaemonProcess(dsn, "hostile-limits", tmp_path)
        await proc.start()
        try:
            await proc.wait_ready()
            assert proc.proc is not None
            pid = proc.proc.pid
            baseline = reset_peak(pid)
            due = soon(800)
            posts = {name: await insert_post(db, campaign, due) for name, campaign in hooks.items()}
            posts["media"] = await insert_post(
                db, mastodon, due, platform="mastodon",
                media=json.dumps([{"url": f"{hostile.url}/image.png", "mime": "image/png"}]))
            await bystander.schedule(due)
            await bystander.published_once_on_time(watcher)
            await watcher.wait_all(list(posts.values()), "draft", "published", timeout=60)
            peak = status_kib(pid, "VmHWM")
        finally:
            await proc.stop()
    messages = {name: (await row(db, post))["error_message"] for name, post in posts.items()}
    statuses = {name: (await row(db, post))["status"] for name, post in posts.items()}
    assert statuses == dict.fromkeys(posts, "draft"), messages
    assert "outcome unknown: webhook: no answer before the timeout" in messages["trickle"]
    assert "webhook: the answer is larger than 1048576 bytes" in messages["huge"]
    assert "webhook: the answer is larger than 1048576 bytes" in messages["bomb"]
    assert messages["media"].startswith("media http://127.0.0.1:") and "larger than 16777216 bytes" in messages["media"]
    assert instance.uploads == [] and instance.statuses == []
    seconds = {name: max(a["seconds"] for a in await attempts(db, post)) for name, post in posts.items()}
    assert 29 <= seconds["trickle"] <= 32, seconds  # the default deadline, not the trickle's 14 hours
    assert max(seconds[n] for n in ("huge", "bomb", "media")) < 10, seconds
    grown = (peak - baseline) / 1024
    print(f"\nhostile endpoints, default settings: peak RSS {baseline / 1024:.1f} MiB -> {peak / 1024:.1f} MiB "
          f"(+{grown:.1f} MiB); attempts {({k: round(v, 2) for k, v in seconds.items()})} s")
    # The media cap (Mastodon's 16 MiB) is the most an answer may occupy; 300 MiB answers
    # and a 1 GiB bomb used to be read whole.
    assert grown < 48, f"peak RSS grew by {grown:.1f} MiB"


async def test_an_attempt_past_its_deadline_after_a_publishing_request_is_an_unknown_outcome(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """The webhook holds the request (5 s request deadline); the attempt ends at 1.5 s. The
    webhook may have published: not retried (webhooks do not deduplicate), a draft."""
    async with Receiver(lambda a: Reply(hang=True)) as held, Receiver() as rx:
        campaign, _ = await make_user(db, "webhook", metadata={"url": held.url + "/hook"})
        bystander = Bystander(db, rx)
        await start_daemon(attempt_timeout_seconds=1.5)
        due = soon()
        post = await insert_post(db, campaign, due)
        await bystander.schedule(due)
        await bystander.published_once_on_time(watcher)
        await watcher.wait(post, "draft", "published", timeout=10)
    [attempt] = await attempts(db, post)
    assert attempt["outcome"] == "unknown" and 1.4 < attempt["seconds"] < 3, dict(attempt)
    expected = "SCHEDULER_ATTEMPT_TIMEOUT_SECONDS (1.5 s) after a request that may have published"
    assert expected in attempt["error_message"]
    assert len(held.arrivals) == 1


async def test_an_attempt_past_its_deadline_before_anything_was_published_is_retried(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """The media download trickles: the attempt ends at 1.5 s while still preparing, so it
    is retried (twice here, then given up), and the instance never saw a status."""
    async with Server(routes={"/slow.png": trickle}) as media_host, Mastodon() as instance, Receiver() as rx:
        campaign, _ = await make_user(db, "mastodon", metadata={"instance_url": instance.url})
        bystander = Bystander(db, rx)
        await start_daemon(attempt_timeout_seconds=1.5, max_attempts=2)
        due = soon()
        post = await insert_post(db, campaign, due, platform="mastodon",
                                 media=json.dumps([{"url": f"{media_host.url}/slow.png", "mime": "image/png"}]))
        await bystander.schedule(due)
        await bystander.published_once_on_time(watcher)
        await watcher.wait(post, "draft", "published", timeout=15)
    first, second = await attempts(db, post)
    assert first["outcome"] == "retry" and "before anything was published; will try again" in first["error_message"]
    assert second["outcome"] == "failed" and second["error_message"].startswith("gave up after 2 attempts")
    assert all(1.4 < a["seconds"] < 3 for a in (first, second))
    assert instance.uploads == [] and instance.statuses == [] and len(media_host.hits) == 2


async def test_answers_reach_the_error_message_only_as_a_short_clean_excerpt(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """A webhook's raw body and a Mastodon instance's JSON error field, both full of
    terminal escapes, header lines and bidi overrides, 50 kB long."""
    noise = "\x1b[2J\x1b[31mERROR\r\nSet-Cookie: session=abc\r\n\u202eeulav\u200b\x00" + "A" * 50_000

    async def raw(request: web.Request) -> web.StreamResponse:
        return web.Response(status=422, text=noise, headers={"X-Internal-Token": "hdr-secret-1"})

    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": noise}, status=422, headers={"X-Internal-Token": "hdr-secret-1"})

    async with Server(routes={"/hook": raw}) as hook, Mastodon() as instance:
        instance.routes["/api/v1/statuses"] = refuse
        webhook, _ = await make_user(db, "webhook", metadata={"url": hook.url + "/hook"})
        mastodon, _ = await make_user(db, "mastodon", metadata={"instance_url": instance.url})
        await start_daemon()
        posts = [await insert_post(db, webhook, soon()), await insert_post(db, mastodon, soon(), platform="mastodon")]
        await watcher.wait_all(posts, "draft", "published")
    for post in posts:
        message = (await row(db, post))["error_message"]
        assert len(message) < 300 and message.isprintable() and message.endswith("…"), message
        assert "hdr-secret-1" not in message and "ERROR Set-Cookie: session=abc eulav AAAA" in message, message
