"""Listener health, database faults, crashes and the clock, against a real PostgreSQL (issue 4,
points 1, 2, 3 and 6).

(a) the LISTEN backend killed (pg_terminate_backend) while nobody can reconnect: every
    change made meanwhile (insert, reschedule, cancel, delete, re-schedule a draft) is
    honoured after the reconnect;
(b) half-open TCP through a proxy that stops forwarding without closing: the heartbeat
    notices within seconds; with the pool's connections half-open too, posts still go out;
(c) the database restarted mid-run (a dedicated embedded server): the daemon stays up,
    due posts go out exactly once, an outcome reached while the database is away lands;
(d) the clock: the daemon's timers follow the database, not a wrong or stepping host
    wall clock (SystemClock's own arithmetic is unit-tested in tests/unit/test_clock.py);
(e) crash safety with processes: SIGKILL in mid-publish, restart with the same instance id;
(f) hostile data and platform answers never stop the daemon.

Synchronisation is by events (LISTEN-driven watchers, the receiver's arrivals, the proxy's
link events) under timeouts. The few ``asyncio.sleep`` calls are fault *durations* (how
long the database stays down), never waits for something to have happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from scheduler_daemon.clock import SystemClock
from scheduler_daemon.testing.receiver import Arrival, Receiver, Reply
from support.helpers import Watcher, input_checks_off, insert_post, make_user, row, until
from support.pg import DedicatedServer, dedicated_server
from support.procs import DaemonProcess
from support.tcp_proxy import Link, Proxy

UTC = dt.timezone.utc
TOKEN = "whsec-faults-token-123"


# -- fixtures and helpers ----------------------------------------------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


async def webhook_campaign(db: asyncpg.Connection, url: str) -> uuid.UUID:
    campaign, _ = await make_user(db, "webhook", access_token=TOKEN, metadata={"url": url + "/hook"})
    return campaign


def contents(rx: Receiver) -> list[str]:
    return sorted(a.json()["content"] for a in rx.arrivals)


def deliveries(rx: Receiver) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in rx.arrivals:
        key = a.headers.get("idempotency-key", "?")
        counts[key] = counts.get(key, 0) + 1
    return counts


async def watch_statuses(url: str) -> tuple[asyncpg.Connection, Watcher]:
    """A Watcher on ``url`` seeded with the current statuses (LISTEN first, then read: no gap)."""
    conn = await asyncpg.connect(url)
    watcher = await Watcher(conn).start()
    for r in await conn.fetch("SELECT id, status FROM content_posts"):
        watcher.status.setdefault(r["id"], r["status"])
    return conn, watcher


async def wait_or_explain(
    conn: asyncpg.Connection, watcher: Watcher, ids: list[uuid.UUID], *statuses: str, timeout: float
) -> None:
    """watcher.wait_all, failing with the rows that did not get there."""
    try:
        await watcher.wait_all(ids, *statuses, timeout=timeout)
    except TimeoutError:
        stuck = await conn.fetch(
            "SELECT id, content, status, claimed_by, claimed_at, attempt_count, retry_at, error_message"
            " FROM content_posts WHERE id = ANY($1::uuid[]) AND status <> ALL($2::text[])", ids, list(statuses))
        pytest.fail(f"{len(stuck)} of {len(ids)} posts not {'/'.join(statuses)} after {timeout}s: "
                    + "; ".join(str(dict(r)) for r in stuck[:5]))


class GatedReceiver(Receiver):
    """A Receiver whose answer to chosen requests waits for ``gate``; arrivals also carry
    the monotonic time (immune to a patched ``time.time``)."""

    def __init__(self, responder: Any = None, hold: Callable[[Arrival], bool] = lambda a: False) -> None:
        super().__init__(responder)
        self.gate = asyncio.Event()
        self.hold = hold
        self.mono: dict[str, float] = {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        arrival = Arrival(request.method, request.path_qs, headers, body, time.time())
        self.mono.setdefault(headers.get("idempotency-key", "?"), time.monotonic())
        self.arrivals.append(arrival)
        async with self._changed:
            self._changed.notify_all()
        if self.hold(arrival):
            await self.gate.wait()
        reply = self.responder(arrival)
        if reply.hang:
            await asyncio.Event().wait()
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    async def wait_for_post(self, post_id: uuid.UUID, timeout: float = 10.0) -> Arrival:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: any(a.headers.get("idempotency-key") == str(post_id) for a in self.arrivals)
            )
        return next(a for a in self.arrivals if a.headers.get("idempotency-key") == str(post_id))


@pytest.fixture
def server_url(databases: Any) -> str:
    return str(databases.server_url)


def db_name(url: str) -> str:
    return url.partition("?")[0].rsplit("/", 1)[1]


# -- (a) the LISTEN backend is killed ------------------------------------------------------

FIND_LISTENER = """
SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND application_name = $1
   AND (query LIKE 'LISTEN%' OR query LIKE '%clock_timestamp()%')
"""


async def test_killed_listen_backend_reconnects_and_honours_every_change_made_meanwhile(
    server_url: str, dsn: str, db: asyncpg.Connection, watcher: Watcher, daemon_on: Any
) -> None:
    async with Receiver() as rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await daemon_on(dsn, heartbeat_seconds=0.5, heartbeat_timeout_seconds=1.0)
        listener, dispatcher = running.daemon.listener, running.daemon.dispatcher
        t0 = utcnow()
        old_due = t0 + dt.timedelta(seconds=3)
        rescheduled = await insert_post(db, campaign, old_due, content="rescheduled")
        cancelled = await insert_post(db, campaign, old_due, content="cancelled")
        deleted = await insert_post(db, campaign, old_due, content="deleted")
        uncancelled = await insert_post(db, campaign, old_due, content="uncancelled", status="draft")
        await until(lambda: all(p in dispatcher.timers for p in (rescheduled, cancelled, deleted)), 5, "armed")

        [pid] = [r["pid"] for r in await db.fetch(FIND_LISTENER, f"scheduler-daemon:{running.daemon.run_id}")]
        admin = await asyncpg.connect(server_url)
        try:
            # Nobody may connect to the database until the changes below are committed: the
            # listener is certainly away while they happen.
            await admin.execute(f'ALTER DATABASE "{db_name(dsn)}" ALLOW_CONNECTIONS false')
            assert await db.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)  # waits for the exit
            new_due = t0 + dt.timedelta(seconds=6)
            await db.execute(
                "UPDATE content_posts SET scheduled_date = $2, scheduled_time = $3 WHERE id = $1",
                rescheduled, new_due.date(), new_due.time().replace(tzinfo=None),
            )
            await db.execute("UPDATE content_posts SET status = 'draft' WHERE id = $1", cancelled)
            await db.execute("DELETE FROM content_posts WHERE id = $1", deleted)
            await db.execute("UPDATE content_posts SET status = 'scheduled' WHERE id = $1", uncancelled)
            inserted = await insert_post(db, campaign, t0 + dt.timedelta(seconds=5), content="inserted")
        finally:
            await admin.execute(f'ALTER DATABASE "{db_name(dsn)}" ALLOW_CONNECTIONS true')
            await admin.close()

        await watcher.wait_all([rescheduled, inserted, uncancelled], "published", timeout=30)
        # Every stale timer (due at old_due) has fired by now; a sentinel flushes the pipeline.
        sentinel = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=300), content="sentinel")
        await watcher.wait(sentinel, "published")

    assert listener.reconnects >= 1
    assert contents(rx) == ["inserted", "rescheduled", "sentinel", "uncancelled"]
    assert all(n == 1 for n in deliveries(rx).values()), deliveries(rx)
    by_content = {a.json()["content"]: a for a in rx.arrivals}
    assert by_content["rescheduled"].wall >= new_due.timestamp() - 0.005, "went out at the old time"
    assert (await row(db, cancelled))["status"] == "draft"
    assert await db.fetchval("SELECT count(*) FROM content_posts WHERE id = $1", deleted) == 0


async def test_listener_survives_repeated_kills(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, daemon_on: Any
) -> None:
    """Kill the LISTEN backend five times in a row; each time a post inserted right after is published."""
    async with Receiver() as rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await daemon_on(dsn, heartbeat_seconds=0.5, heartbeat_timeout_seconds=1.0)
        name = f"scheduler-daemon:{running.daemon.run_id}"
        listener = running.daemon.listener
        posts = []
        for n in range(5):
            await until(lambda n=n: listener.connected and listener.reconnects >= n, 20, "the listener to be back")
            pids = [r["pid"] for r in await db.fetch(FIND_LISTENER, name)]
            assert len(pids) == 1, pids
            assert await db.fetchval("SELECT pg_terminate_backend($1, 5000)", pids[0])
            posts.append(await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=200), content=f"k{n}"))
            await watcher.wait(posts[-1], "published", timeout=20)
    assert contents(rx) == [f"k{n}" for n in range(5)]
    assert listener.reconnects >= 5


# -- (b) half-open TCP -------------------------------------------------------------------


async def test_half_open_listen_connection_is_noticed_within_seconds(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, daemon_on: Any
) -> None:
    heartbeat, timeout = 0.5, 1.0
    async with Proxy(dsn) as proxy, Receiver() as rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await daemon_on(proxy.dsn, heartbeat_seconds=heartbeat, heartbeat_timeout_seconds=timeout)
        [first] = await proxy.wait_for(lambda: proxy.live(lambda link: link.listens))
        frozen_at = time.monotonic()
        assert proxy.freeze(lambda link: link is first) == [first]
        # Sent while the listener's socket is a black hole: only the resync can arm it.
        post = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=300), content="while frozen")

        def fresh() -> list[Link]:
            return proxy.live(lambda link: link.listens and link is not first)

        [second] = await proxy.wait_for(fresh, timeout=15)
        noticed = time.monotonic() - frozen_at
        half_open = first.frozen and not first.closed
        await watcher.wait(post, "published", timeout=10)
        await running.stop()  # before the proxy goes away

    # heartbeat period + its timeout + the reconnect backoff (≤ 1 s) + slack for a busy CI box
    assert noticed < heartbeat + timeout + 1.0 + 2.0, f"half-open LISTEN noticed after {noticed:.1f}s"
    assert half_open, "the proxy kept the old connection half-open while the daemon moved on"
    assert second.number > first.number
    assert running.daemon.listener.reconnects >= 1
    assert contents(rx) == ["while frozen"]


async def test_half_open_pool_connections_do_not_stall_publishing(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, daemon_on: Any
) -> None:
    """Every connection the daemon holds goes half-open at once (a NAT or firewall dropped
    the flows): new connections work. A post due 1 s later must still go out within
    seconds, not after asyncpg's 60 s command_timeout on a pool connection that never
    answers (issue 4: 'noticed within seconds', 'killing one never delays a post beyond
    normal lateness')."""
    async with Proxy(dsn) as proxy, Receiver() as rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await daemon_on(proxy.dsn, heartbeat_seconds=0.5, heartbeat_timeout_seconds=1.0)
        due = utcnow() + dt.timedelta(seconds=1)
        warm = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=200), content="warm")
        await watcher.wait(warm, "published")  # the pool has connections in use and idle
        post = await insert_post(db, campaign, due, content="after the partition")
        frozen = proxy.freeze()
        assert frozen
        started = time.monotonic()
        try:
            await watcher.wait(post, "published", timeout=15)
        except TimeoutError:
            pytest.fail(
                f"a post due 1 s after the pool's connections went half-open was not published "
                f"within {time.monotonic() - started:.0f} s (links: {proxy.links})"
            )
        finally:
            proxy.cut()  # the daemon must be able to notice and stop before the proxy goes
            running.daemon.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await asyncio.shield(running.task)
    assert contents(rx) == ["after the partition", "warm"]


# -- (c) the database restarts ------------------------------------------------------------


@pytest.fixture
def dedicated() -> Any:
    # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, which
    # would pull the data directory from under this server.
    directory = Path(tempfile.mkdtemp(prefix="scheduler-daemon-faults-"))
    try:
        with dedicated_server(directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_database_restart_mid_run_every_post_once_and_outcomes_land(
    dedicated: DedicatedServer, daemon_on: Any
) -> None:
    url = await dedicated.database("faults")
    db = await asyncpg.connect(url)
    rx = GatedReceiver(
        responder=lambda a: Reply(200, {"id": f"platform-{a.json()['content']}"}),
        hold=lambda a: a.json()["content"] == "held",
    )
    async with rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await daemon_on(url, heartbeat_seconds=0.5, heartbeat_timeout_seconds=1.0)
        t0 = utcnow()
        held = await insert_post(db, campaign, t0 + dt.timedelta(milliseconds=300), content="held")
        during = [
            await insert_post(db, campaign, t0 + dt.timedelta(seconds=2.5), content=f"during {n}") for n in range(10)
        ]
        after = [await insert_post(db, campaign, t0 + dt.timedelta(seconds=6), content=f"after {n}") for n in range(10)]
        await db.close()
        await rx.wait_for_post(held)

        await dedicated.astop("fast")  # every connection is closed by the server
        rx.gate.set()  # the platform answers 200 while the database is away
        outage_until = t0 + dt.timedelta(seconds=4)
        await asyncio.sleep((outage_until - utcnow()).total_seconds())  # fault duration: past 'during'
        assert not running.task.done(), "the daemon exited during the outage"
        await dedicated.astart()

        conn, watcher = await watch_statuses(url)
        try:
            # A post written after the restart can only be armed by the re-established LISTEN
            # (or its resync): it proves the listener came back.
            fresh = await insert_post(conn, campaign, utcnow() + dt.timedelta(milliseconds=300), content="fresh")
            await wait_or_explain(conn, watcher, [held, *during, *after, fresh], "published", timeout=40)
            held_row = await row(conn, held)
            attempts = await conn.fetch("SELECT post_id, outcome FROM publish_attempts ORDER BY id")
        finally:
            await conn.close()

    assert not running.task.done()
    assert held_row["platform_post_id"] == "platform-held", "the platform post id was forgotten"
    counts = deliveries(rx)
    assert sorted(counts) == sorted(str(p) for p in [held, *during, *after, fresh])
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n != 1}
    published = [a["post_id"] for a in attempts if a["outcome"] == "published"]
    assert sorted(published) == sorted([held, *during, *after, fresh]), "each post has one 'published' audit row"


async def test_database_crash_restart_immediate_mode(dedicated: DedicatedServer, daemon_on: Any) -> None:
    """pg_ctl -m immediate: the server dies without a clean shutdown (crash recovery on start)."""
    url = await dedicated.database("faults")
    db = await asyncpg.connect(url)
    async with Receiver(lambda a: Reply(200, {"id": a.json()["content"]})) as rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await daemon_on(url, heartbeat_seconds=0.5, heartbeat_timeout_seconds=1.0)
        t0 = utcnow()
        posts = [
            await insert_post(db, campaign, t0 + dt.timedelta(seconds=1 + n * 0.1), content=f"p{n}") for n in range(30)
        ]
        await db.close()
        await rx.wait_for(5, timeout=10)
        await dedicated.astop("immediate")
        await asyncio.sleep(1.0)  # fault duration
        await dedicated.astart()
        conn, watcher = await watch_statuses(url)
        try:
            await watcher.wait_all(posts, "published", "draft", timeout=40)
            rows_ = {r["id"]: r for r in await conn.fetch("SELECT id, status, error_message FROM content_posts")}
        finally:
            await conn.close()
    assert not running.task.done()
    counts = deliveries(rx)
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n != 1}
    for post in posts:
        r = rows_[post]
        if r["status"] == "published":
            assert counts.get(str(post)) == 1
        else:  # a publish whose outcome was lost with the crash: unknown, never silent
            assert r["error_message"] and "outcome unknown" in r["error_message"], r


# -- (d) the clock -----------------------------------------------------------------------


async def test_daemon_timers_follow_the_database_clock_not_a_wrong_host_clock(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, daemon_on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's wall clock is two hours ahead when the daemon starts: anchoring on the
    database at connect corrects it before anything is armed, so a post due in 1 s is not
    'missed' (2 h late > 1 h grace) and goes out on time."""
    wall = time.time
    with monkeypatch.context() as ahead:
        ahead.setattr(time, "time", lambda: wall() + 7200)  # 2 h ahead when the clock is made
        clock = SystemClock()
    rx = GatedReceiver()
    async with rx:
        campaign = await webhook_campaign(db, rx.url)
        await daemon_on(dsn, clock=clock, heartbeat_seconds=0.5)
        assert abs(clock.skew) < 0.5, f"not re-anchored on the database: skew {clock.skew:.1f}s"
        due_in = 1.0
        start = time.monotonic()
        post = await insert_post(db, campaign, utcnow() + dt.timedelta(seconds=due_in))
        await watcher.wait(post, "published", "draft", timeout=10)
    assert (await row(db, post))["status"] == "published", (await row(db, post))["error_message"]
    lateness = rx.mono[str(post)] - start - due_in
    assert -0.05 <= lateness < 1.0, f"published {lateness:+.3f}s off its instant"


async def test_wall_clock_step_mid_run_moves_no_timer(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, daemon_on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the daemon is up, the host's wall clock steps forward an hour (time.time only:
    what NTP or a VM resume changes). Posts due in 1 s and 2 s go out on time, not at once."""
    rx = GatedReceiver()
    async with rx:
        campaign = await webhook_campaign(db, rx.url)
        await daemon_on(dsn, heartbeat_seconds=0.3)
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
        start = time.monotonic()
        one = await insert_post(db, campaign, utcnow() + dt.timedelta(seconds=1))
        two = await insert_post(db, campaign, utcnow() + dt.timedelta(seconds=2))
        await watcher.wait_all([one, two], "published", timeout=10)
    for post, due_in in ((one, 1.0), (two, 2.0)):
        lateness = rx.mono[str(post)] - start - due_in
        assert -0.05 <= lateness < 1.0, f"post due in {due_in}s went out {lateness:+.3f}s off"


# -- (e) crash safety with real processes --------------------------------------------------


async def test_sigkill_mid_publish_and_restart_with_the_same_instance_id_never_publishes_twice(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, tmp_path: Path
) -> None:
    """A daemon with a fixed SCHEDULER_INSTANCE_ID (one per VM) is SIGKILLed while the
    platform holds its request; systemd restarts it with the same id. The request may have
    been published, the platform is not idempotent (webhook): the post must end 'draft'
    with "outcome unknown" and must not be sent again."""
    rx = GatedReceiver(hold=lambda a: True)
    async with rx:
        campaign = await webhook_campaign(db, rx.url)
        # The killed run's request counts as possibly under way for a request's deadline: short here.
        env = dict(SCHEDULER_HEARTBEAT_SECONDS="0.5", SCHEDULER_HEARTBEAT_TIMEOUT_SECONDS="1",
                   SCHEDULER_HTTP_TIMEOUT_SECONDS="3")
        proc = DaemonProcess(dsn, "vm-1", tmp_path, **env)
        await proc.start()
        try:
            await proc.wait_ready()
            post = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=300), content="in flight")
            await rx.wait_for_post(post)
            proc.kill()
            await proc.wait()
            rx.gate.set()  # the platform did publish it
            await proc.start()  # same instance id
            await proc.wait_ready()
            status = await watcher.wait(post, "draft", "published", timeout=20)
            sentinel = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=300), content="sentinel")
            await watcher.wait(sentinel, "published", timeout=10)
        finally:
            await proc.stop()
    counts = deliveries(rx)
    assert counts[str(post)] == 1, f"published {counts[str(post)]} times after a restart with the same id"
    r = await row(db, post)
    assert status == "draft" and r["status"] == "draft"
    assert "outcome unknown" in r["error_message"]


async def test_sigkill_mid_publish_and_restart_with_a_new_instance_id(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, tmp_path: Path
) -> None:
    """The default instance id is host:pid, so a restart normally comes back under a new id:
    the old run's row is an orphan, resolved once its lock has been gone for
    SCHEDULER_RECOVERY_AFTER_SECONDS and its request's deadline has passed."""
    rx = GatedReceiver(hold=lambda a: True)
    async with rx:
        campaign = await webhook_campaign(db, rx.url)
        # Its request may be under way for a request's deadline after the kill: keep that short.
        env = dict(SCHEDULER_HEARTBEAT_SECONDS="0.5", SCHEDULER_HEARTBEAT_TIMEOUT_SECONDS="1",
                   SCHEDULER_HTTP_TIMEOUT_SECONDS="3")
        first = DaemonProcess(dsn, "old-pid", tmp_path, **env)
        await first.start()
        try:
            await first.wait_ready()
            post = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=300), content="in flight")
            await rx.wait_for_post(post)
            first.kill()
            await first.wait()
            rx.gate.set()
            second = DaemonProcess(dsn, "new-pid", tmp_path, **env)
            await second.start()
            try:
                await second.wait_ready()
                await watcher.wait(post, "draft", "published", timeout=20)
            finally:
                await second.stop()
        finally:
            await first.stop()
    assert deliveries(rx)[str(post)] == 1
    r = await row(db, post)
    assert r["status"] == "draft" and "outcome unknown" in r["error_message"]


# -- (f) hostile data and answers never stop the daemon -------------------------------------


async def test_a_row_whose_due_instant_overflows_does_not_stop_the_daemon(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """PostgreSQL stores 0001-01-01 and 9999-12-31; read in a zone with an offset they fall
    outside Python's datetime range. Such a row must go back to draft with a reason (like
    any bad date) — at boot and when it arrives by notification — and the rest go out."""
    async with Receiver() as rx:
        campaign = await webhook_campaign(db, rx.url)
        # Refused at write time since migrations/004 (years outside 2000-2999): rows from before it.
        async with input_checks_off(db):
            early = await db.fetchval(
                "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,"
                " timezone) VALUES ($1, 'webhook', 'year one', 'scheduled', '0001-01-01', '00:00', 'Asia/Tokyo')"
                " RETURNING id",
                campaign,
            )
        ok = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=500), content="fine")
        running = await start_daemon()
        async with input_checks_off(db):
            late = await db.fetchval(
                "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,"
                " timezone) VALUES ($1, 'webhook', 'year 9999', 'scheduled', '9999-12-31', '23:00', 'America/New_York')"
                " RETURNING id",
                campaign,
            )
        await watcher.wait(ok, "published")
        await watcher.wait_all([early, late], "draft", timeout=10)
        running.daemon.resync()  # a SIGHUP reloads every row: must not crash either
        after = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=500), content="after")
        await watcher.wait(after, "published")
        assert not running.task.done()
    for post in (early, late):
        assert (await row(db, post))["error_message"]
    assert contents(rx) == ["after", "fine"]


@pytest.mark.parametrize("retry_after", ["inf", "1e12", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_an_absurd_retry_after_does_not_stop_the_daemon(
    retry_after: str, db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """A platform (or a proxy in front of it) answers 429 with a Retry-After the daemon cannot
    add to a datetime. The post must be postponed or returned to draft with a reason; every
    other post still goes out."""
    def reply(a: Arrival) -> Reply:
        if a.json()["content"] == "limited":
            return Reply(429, {"error": "slow down"}, headers={"Retry-After": retry_after})
        return Reply(200, {"id": "ok"})

    async with Receiver(reply) as rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await start_daemon()
        limited = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=300), content="limited")
        await rx.wait_for(1)
        other = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=500), content="other")
        try:
            await watcher.wait(other, "published", timeout=10)
        except TimeoutError:
            crashed = running.task.done() and running.task.exception()
            pytest.fail(f"the daemon stopped publishing after Retry-After: {retry_after} ({crashed!r})")
        assert not running.task.done()
    r = await row(db, limited)
    assert r["status"] in ("scheduled", "draft") and r["error_message"], dict(r)


# -- (g) a resync while a failed claim backs off -------------------------------------------

FAIL_CLAIMS_SQL = """
CREATE TABLE test_fail_claims (x int);
CREATE FUNCTION test_fail_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'scheduled' AND NEW.status = 'publishing' AND EXISTS (SELECT 1 FROM test_fail_claims) THEN
        RAISE EXCEPTION 'claims fail for this test';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_fail_claim BEFORE UPDATE ON content_posts FOR EACH ROW EXECUTE FUNCTION test_fail_claim();
INSERT INTO test_fail_claims VALUES (1);
"""


async def test_a_resync_during_a_failed_claims_backoff_loses_no_post(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """The claim of a due post fails (the database refuses it: an outage, a lock timeout); the
    dispatcher re-arms it and backs off 0.5 s. A resync (a listener reconnect, SIGHUP)
    landing in that half second must not drop the post from the schedule: once claims
    work again it goes out — it is not left 'scheduled' and unarmed until some later resync."""
    async with Receiver() as rx:
        campaign = await webhook_campaign(db, rx.url)
        running = await start_daemon()
        dispatcher = running.daemon.dispatcher
        await db.execute(FAIL_CLAIMS_SQL)
        failed, synced = asyncio.Event(), asyncio.Event()
        real_claim, real_sync = dispatcher.repository.claim, dispatcher.sync

        async def claim(items: Any, **options: Any) -> Any:
            try:
                return await real_claim(items, **options)
            except asyncpg.PostgresError:
                failed.set()
                raise

        if inspect.iscoroutinefunction(real_sync):
            async def sync(loaded: Any) -> None:
                await real_sync(loaded)
                synced.set()
        else:
            def sync(loaded: Any) -> None:  # type: ignore[misc]
                real_sync(loaded)
                synced.set()

        dispatcher.repository.claim = claim  # type: ignore[method-assign]
        dispatcher.sync = sync  # type: ignore[method-assign]
        post = await insert_post(db, campaign, utcnow() + dt.timedelta(milliseconds=200))
        async with asyncio.timeout(10):
            await failed.wait()  # the dispatcher has re-armed the post and is backing off
        synced.clear()
        running.daemon.resync()
        async with asyncio.timeout(10):
            await synced.wait()
        await db.execute("DELETE FROM test_fail_claims")  # claims work again
        try:
            await watcher.wait(post, "published", timeout=8)
        except TimeoutError:
            r = await row(db, post)
            pytest.fail(f"post left {r['status']!r} and unarmed (armed: {post in dispatcher.timers}, "
                        f"in flight: {post in dispatcher.inflight}) after a resync during the claim backoff")
    assert len(rx.arrivals) == 1
