"""Security (issue 4, point 9): least privilege, row-level security, secrets, TLS.

* migrations/003: the ``scheduler_daemon`` role has exactly the privileges it needs; a LOGIN
  user in it runs the daemon end to end (claim, outcomes, publish_attempts, rejections,
  needs_reconnect, recovery) and can DROP/DELETE/TRUNCATE/ALTER nothing;
* on a database with Supabase's ``authenticated`` role and ``auth.uid()`` (faked here),
  RLS is enabled with owner-only policies; on plain PostgreSQL nothing changes; 003 is
  idempotent and keeps every row;
* a post may not be published with another user's connection;
* no secret (tokens, the database password, webhook secrets, Supabase and OAuth client
  keys) appears in any log line of a whole run, with the secrets pushed into error paths;
* TLS: ``sslmode=require`` and ``verify-full`` through ``create_pool`` and a whole daemon
  run, on a dedicated embedded server started with ``ssl=on`` and a throwaway certificate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
import structlog

from scheduler_daemon.config import Settings
from scheduler_daemon.config.platforms import ClientCredentials
from scheduler_daemon.db.embedded import ensure_database
from scheduler_daemon.db.migrate import available, migrate, pending
from scheduler_daemon.db.repository import create_pool
from scheduler_daemon.errors import ContentRejectedError
from scheduler_daemon.logs import configure
from scheduler_daemon.platforms import webhook
from scheduler_daemon.testing.postgres import WATCH_SQL
from scheduler_daemon.testing.receiver import Arrival, Receiver, Reply
from support.helpers import Watcher, insert_post, make_user, row
from support.pg import TlsCluster, system_bin

UTC = dt.timezone.utc


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def soon(ms: int = 300) -> dt.datetime:
    return utcnow() + dt.timedelta(milliseconds=ms)


def as_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{quote(user)}:{quote(password)}@{host}", parts.path, parts.query, ""))


@pytest.fixture
async def daemon_user(db: asyncpg.Connection, dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A LOGIN user IN ROLE scheduler_daemon, as the migration's comment documents; (name, dsn)."""
    name = f"sd_login_{uuid.uuid4().hex[:8]}"
    password = "Db-Passw0rd-" + uuid.uuid4().hex
    await db.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE scheduler_daemon")
    yield name, as_user(dsn, name, password)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name)
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
    finally:
        await admin.close()


async def webhook_campaign(db: asyncpg.Connection, url: str, token: str = "whsec-sec-token-1") -> uuid.UUID:
    campaign, _ = await make_user(db, "webhook", access_token=token, metadata={"url": url + "/hook"})
    return campaign


# -- the daemon's role ------------------------------------------------------------------

DAEMON_TABLE_PRIVILEGES = {
    "content_posts": {"SELECT"},
    "platform_connections": {"SELECT"},
    "publish_attempts": {"SELECT", "INSERT"},
    "content_campaigns": {"SELECT"},
    "scheduler_migrations": {"SELECT"},
}
DAEMON_UPDATABLE = {
    "content_posts": {"status", "error_message", "platform_post_id", "platform_post_url", "published_at",
                      "retry_at", "attempt_count", "claimed_by", "claimed_at", "publish_state",
                      # migrations/010: the preparer's
                      "prepare_error", "prepared_version", "prepare_lease", "prepare_lease_until"},
    "platform_connections": {"access_token", "refresh_token", "token_expires_at", "metadata", "needs_reconnect",
                             "updated_at"},
}


async def test_daemon_role_has_exactly_the_privileges_it_needs(db: asyncpg.Connection) -> None:
    assert await db.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'scheduler_daemon'") is False
    for table, expected in DAEMON_TABLE_PRIVILEGES.items():
        granted = {
            p for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
            if await db.fetchval("SELECT has_table_privilege('scheduler_daemon', $1, $2)", table, p)
        }
        assert granted == expected, f"{table}: {granted}"
        columns = [
            r["attname"]
            for r in await db.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
                table,
            )
        ]
        updatable = {
            c
            for c in columns
            if await db.fetchval("SELECT has_column_privilege('scheduler_daemon', $1, $2, 'UPDATE')", table, c)
        }
        assert updatable == DAEMON_UPDATABLE.get(table, set()), f"{table}: {updatable}"
    assert not await db.fetchval("SELECT has_schema_privilege('scheduler_daemon', current_schema(), 'CREATE')")
    assert not await db.fetchval("SELECT has_database_privilege('scheduler_daemon', current_database(), 'CREATE')")


async def test_a_login_user_in_the_daemon_role_runs_the_daemon_end_to_end(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any, daemon_user: tuple[str, str], settings: Settings
) -> None:
    """Every statement path: claim, published / retry / failed outcomes with their audit rows,
    a rejection (missed), needs_reconnect (401), recovery's pg_stat_activity check."""
    name, user_dsn = daemon_user
    replies = {"ok": [Reply(200, {"id": "p-ok"})], "retry": [Reply(429), Reply(200, {"id": "p-retry"})],
               "bad": [Reply(422, {"error": "nope"})]}

    def reply(a: Arrival) -> Reply:
        return replies[a.json()["content"]].pop(0)

    async with Receiver(reply) as rx, Receiver(lambda a: Reply(401, {"error": "bad signature"})) as denied:
        campaign = await webhook_campaign(db, rx.url)
        denied_campaign, denied_connection = await make_user(
            db, "webhook", access_token="whsec-denied-1", metadata={"url": denied.url + "/hook"})
        missed = await insert_post(db, campaign, utcnow() - dt.timedelta(hours=3), content="missed")
        # A row another (dead) instance left 'publishing': recovery resolves it as this user.
        orphan = await insert_post(db, campaign, utcnow() - dt.timedelta(minutes=5), content="orphan", status="draft")
        await db.execute("UPDATE content_posts SET status = 'publishing', claimed_by = 'dead-vm',"
                         " claimed_at = now() - interval '1 hour' WHERE id = $1", orphan)

        from scheduler_daemon.daemon import Daemon

        daemon = Daemon(replace(settings, recovery_after_seconds=0.0), user_dsn)
        task = asyncio.create_task(daemon.run())
        try:
            async with asyncio.timeout(15):
                started = asyncio.ensure_future(daemon.started.wait())
                await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            ok = await insert_post(db, campaign, soon(), content="ok")
            retry = await insert_post(db, campaign, soon(), content="retry")
            bad = await insert_post(db, campaign, soon(), content="bad")
            auth = await insert_post(db, denied_campaign, soon(), content="auth")
            await watcher.wait_all([ok, retry], "published")
            await watcher.wait_all([bad, auth, missed, orphan], "draft")
            users = {r["usename"] for r in await db.fetch(
                "SELECT usename FROM pg_stat_activity WHERE application_name LIKE 'scheduler-daemon:%'")}
        finally:
            daemon.stop()
            async with asyncio.timeout(15):
                await task
    assert users == {name}, "the daemon connected as someone else"
    assert (await row(db, ok))["platform_post_id"] == "p-ok"
    assert (await row(db, retry))["platform_post_id"] == "p-retry"
    assert "nope" in (await row(db, bad))["error_message"]
    assert (await row(db, missed))["error_message"].startswith("missed")
    assert "outcome unknown" in (await row(db, orphan))["error_message"]
    assert await db.fetchval("SELECT needs_reconnect FROM platform_connections WHERE id = $1", denied_connection)
    outcomes = sorted(r["outcome"] for r in await db.fetch("SELECT outcome FROM publish_attempts"))
    assert outcomes == sorted(["published", "retry", "published", "failed", "failed", "unknown"])


@pytest.mark.parametrize("statement", [
    "DELETE FROM content_posts",
    "DELETE FROM publish_attempts",
    "DELETE FROM platform_connections",
    "TRUNCATE content_posts",
    "DROP TABLE content_posts",
    "DROP TABLE publish_attempts",
    "ALTER TABLE content_posts ADD COLUMN x int",
    "ALTER TABLE content_posts DISABLE TRIGGER ALL",
    "UPDATE content_posts SET content = 'defaced'",
    "UPDATE content_posts SET campaign_id = NULL",
    "UPDATE content_posts SET scheduled_date = '2030-01-01'",
    "UPDATE content_campaigns SET user_id = gen_random_uuid()",
    "UPDATE platform_connections SET user_id = gen_random_uuid()",
    "UPDATE platform_connections SET platform = 'x'",
    "UPDATE publish_attempts SET outcome = 'published'",
    "INSERT INTO content_posts (platform) VALUES ('webhook')",
    "INSERT INTO content_campaigns (user_id) VALUES (gen_random_uuid())",
    "INSERT INTO platform_connections (user_id, platform) VALUES (gen_random_uuid(), 'x')",
    "CREATE TABLE evil (x int)",
    "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "DELETE FROM scheduler_migrations",
    "INSERT INTO scheduler_migrations (name) VALUES ('999_evil.sql')",
    "ALTER TABLE content_posts DISABLE ROW LEVEL SECURITY",
    "CREATE ROLE evil",
])
async def test_the_daemon_role_cannot_destroy_or_rewrite(statement: str, db: asyncpg.Connection,
                                                          daemon_user: tuple[str, str]) -> None:
    campaign, _ = await make_user(db)
    await insert_post(db, campaign, utcnow() + dt.timedelta(days=1))
    conn = await asyncpg.connect(daemon_user[1])
    try:
        with pytest.raises(asyncpg.PostgresError) as raised:
            await conn.execute(statement)
        assert isinstance(raised.value, (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedFunctionError)), (
            raised.value
        )
    finally:
        await conn.close()
    assert await db.fetchval("SELECT count(*) FROM content_posts") == 1


async def test_the_daemon_role_can_check_migrations(daemon_user: tuple[str, str]) -> None:
    """`scheduler-daemon run` (without --migrate) reads scheduler_migrations."""
    conn = await asyncpg.connect(daemon_user[1])
    try:
        assert await pending(conn) == []
    finally:
        await conn.close()


# -- 003 on plain PostgreSQL and on a Supabase-like database ----------------------------


async def test_on_plain_postgresql_no_rls_is_enabled(db: asyncpg.Connection) -> None:
    assert not await db.fetchval("SELECT exists (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')") or \
        await db.fetchval("SELECT to_regprocedure('auth.uid()') IS NULL")
    enabled = await db.fetch("SELECT relname FROM pg_class WHERE relrowsecurity AND relname = ANY($1::text[])",
                             ["content_posts", "content_campaigns", "platform_connections", "publish_attempts"])
    assert enabled == []


async def test_migration_003_is_idempotent_and_keeps_every_row(db: asyncpg.Connection) -> None:
    campaign, _ = await make_user(db)
    ids = [await insert_post(db, campaign, utcnow() + dt.timedelta(hours=n)) for n in range(1, 4)]
    sql = next(m.sql for m in available() if m.name == "003_roles_rls.sql")
    for _ in range(3):
        await db.execute(sql)
    assert sorted(r["id"] for r in await db.fetch("SELECT id FROM content_posts")) == sorted(ids)
    assert await db.fetchval("SELECT count(*) FROM platform_connections") == 1


FAKE_SUPABASE = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS auth;
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
    $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
GRANT USAGE ON SCHEMA auth TO authenticated;
"""


@pytest.fixture
async def supabase_like(databases: Any) -> AsyncIterator[str]:
    """An empty database with a fake ``authenticated`` role and ``auth.uid()``, then migrated."""
    url = await databases.create_empty()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FAKE_SUPABASE)
        await migrate(conn)
        await conn.execute(WATCH_SQL)
    finally:
        await conn.close()
    yield url
    await databases.drop(url)


async def as_authenticated(conn: asyncpg.Connection, user: uuid.UUID | None) -> None:
    await conn.execute("RESET ROLE")
    await conn.execute("SELECT set_config('request.jwt.claim.sub', $1, false)", str(user) if user else "")
    await conn.execute("SET ROLE authenticated")


async def test_rls_on_a_supabase_like_database_is_owner_only(supabase_like: str) -> None:
    admin = await asyncpg.connect(supabase_like)
    app = await asyncpg.connect(supabase_like)  # the frontend's session, as `authenticated`
    try:
        enabled = {r["relname"] for r in await admin.fetch("SELECT relname FROM pg_class WHERE relrowsecurity")}
        assert {"content_posts", "content_campaigns", "platform_connections", "publish_attempts"} <= enabled
        alice, bob = uuid.uuid4(), uuid.uuid4()
        rows_of: dict[uuid.UUID, dict[str, uuid.UUID]] = {}
        for user in (alice, bob):
            campaign = await admin.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
            connection = await admin.fetchval(
                "INSERT INTO platform_connections (user_id, platform, access_token) VALUES ($1, 'webhook', $2)"
                " RETURNING id", user, f"token-of-{user}")
            post = await admin.fetchval(
                "INSERT INTO content_posts (campaign_id, platform, content) VALUES ($1, 'webhook', 'x') RETURNING id",
                campaign)
            await admin.execute(
                "INSERT INTO publish_attempts (post_id, attempt, platform, started_at, finished_at, outcome)"
                " VALUES ($1, 1, 'webhook', now(), now(), 'published')", post)
            rows_of[user] = {"campaign": campaign, "connection": connection, "post": post}

        await as_authenticated(app, alice)
        assert [r["id"] for r in await app.fetch("SELECT id FROM content_campaigns")] == [rows_of[alice]["campaign"]]
        assert [r["id"] for r in await app.fetch("SELECT id FROM platform_connections")] == [
            rows_of[alice]["connection"]
        ]
        assert [r["id"] for r in await app.fetch("SELECT id FROM content_posts")] == [rows_of[alice]["post"]]
        assert [r["post_id"] for r in await app.fetch("SELECT post_id FROM publish_attempts")] == [
            rows_of[alice]["post"]
        ]
        # Writes to Bob's rows touch nothing.
        assert (
            await app.execute("UPDATE content_posts SET content = 'hacked' WHERE id = $1", rows_of[bob]["post"])
            == "UPDATE 0"
        )
        assert await app.execute("DELETE FROM content_campaigns WHERE id = $1", rows_of[bob]["campaign"]) == "DELETE 0"
        assert await app.execute("UPDATE platform_connections SET access_token = 'x' WHERE id = $1",
                                 rows_of[bob]["connection"]) == "UPDATE 0"
        # Rows for someone else, or pointing at someone else's rows, are refused.
        for statement, args in [
            ("INSERT INTO content_campaigns (user_id) VALUES ($1)", [bob]),
            ("INSERT INTO platform_connections (user_id, platform) VALUES ($1, 'webhook')", [bob]),
            ("INSERT INTO content_posts (campaign_id, platform) VALUES ($1, 'webhook')", [rows_of[bob]["campaign"]]),
            ("INSERT INTO content_posts (campaign_id, platform, connection_id) VALUES ($1, 'webhook', $2)",
             [rows_of[alice]["campaign"], rows_of[bob]["connection"]]),
            ("UPDATE content_posts SET connection_id = $1 WHERE id = $2",
             [rows_of[bob]["connection"], rows_of[alice]["post"]]),
            ("UPDATE content_posts SET campaign_id = $1 WHERE id = $2",
             [rows_of[bob]["campaign"], rows_of[alice]["post"]]),
            ("UPDATE content_campaigns SET user_id = $1 WHERE id = $2", [bob, rows_of[alice]["campaign"]]),
        ]:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement, *args)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the audit trail is read-only
            await app.execute("INSERT INTO publish_attempts (post_id, attempt, platform, started_at, finished_at,"
                              " outcome) VALUES ($1, 2, 'webhook', now(), now(), 'published')", rows_of[alice]["post"])
        # Alice's own rows work as usual.
        post = await app.fetchval(
            "INSERT INTO content_posts (campaign_id, platform, connection_id) VALUES ($1, 'webhook', $2) RETURNING id",
            rows_of[alice]["campaign"],
            rows_of[alice]["connection"],
        )
        assert await app.execute("UPDATE content_posts SET content = 'mine' WHERE id = $1", post) == "UPDATE 1"
        assert await app.execute("DELETE FROM content_posts WHERE id = $1", post) == "DELETE 1"
        # No user (anonymous JWT): nothing.
        await as_authenticated(app, None)
        assert await app.fetchval("SELECT count(*) FROM content_posts") == 0
        assert await app.fetchval("SELECT count(*) FROM platform_connections") == 0
        # Unchanged for the owner of the tables.
        assert await admin.fetchval("SELECT count(*) FROM content_posts") == 2
    finally:
        await app.close()
        await admin.close()


async def test_rls_migration_reapplied_keeps_policies_and_rows(supabase_like: str) -> None:
    admin = await asyncpg.connect(supabase_like)
    try:
        await admin.execute("INSERT INTO content_campaigns (user_id) VALUES (gen_random_uuid())")
        before = await admin.fetch("SELECT tablename, policyname FROM pg_policies ORDER BY 1, 2")
        sql = next(m.sql for m in available() if m.name == "003_roles_rls.sql")
        await admin.execute(sql)
        await admin.execute(sql)
        assert await admin.fetch("SELECT tablename, policyname FROM pg_policies ORDER BY 1, 2") == before
        assert await admin.fetchval("SELECT count(*) FROM content_campaigns") == 1
    finally:
        await admin.close()


async def test_the_daemon_role_works_under_rls(supabase_like: str, settings: Settings) -> None:
    """With RLS on, a LOGIN user in scheduler_daemon still sees and publishes every user's posts."""
    from scheduler_daemon.daemon import Daemon

    admin = await asyncpg.connect(supabase_like)
    name = f"sd_rls_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'pw-{name}' IN ROLE scheduler_daemon")
    watcher = await Watcher(await asyncpg.connect(supabase_like)).start()
    try:
        async with Receiver() as rx:
            posts = []
            for _ in range(2):
                campaign = await webhook_campaign(admin, rx.url)
                posts.append(await insert_post(admin, campaign, soon(500)))
            daemon = Daemon(settings, as_user(supabase_like, name, f"pw-{name}"))
            task = asyncio.create_task(daemon.run())
            try:
                await watcher.wait_all(posts, "published", timeout=15)
            finally:
                daemon.stop()
                async with asyncio.timeout(15):
                    await task
        assert len(rx.arrivals) == 2
        assert await admin.fetchval("SELECT count(*) FROM publish_attempts") == 2
    finally:
        await watcher.conn.close()
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'")
        await admin.execute(f"DROP OWNED BY {name}")
        await admin.execute(f"DROP ROLE {name}")
        await admin.close()


# -- one user's post, another user's connection -------------------------------------------


async def test_a_post_cannot_publish_with_another_users_connection(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any
) -> None:
    """Alice's post names Bob's connection (a frontend bug, a guessed id, or no RLS): the
    daemon must not sign with Bob's secret nor post to Bob's endpoint."""
    async with Receiver() as alices, Receiver() as bobs:
        alice_campaign, _ = await make_user(db, "webhook", access_token="alice-secret-1",
                                            metadata={"url": alices.url + "/hook"})
        _, bob_connection = await make_user(db, "webhook", access_token="bob-secret-1",
                                            metadata={"url": bobs.url + "/hook"})
        await start_daemon()
        post = await insert_post(db, alice_campaign, soon(), connection_id=bob_connection)
        sentinel = await insert_post(db, alice_campaign, soon(600))
        await watcher.wait(sentinel, "published")
        await watcher.wait(post, "draft", "published")
    assert bobs.arrivals == [], "Alice's post went out through Bob's connection"
    assert (await row(db, post))["status"] == "draft"


# -- secrets never reach the logs -----------------------------------------------------------


DB_PASSWORD = "Db-Pa55word-" + uuid.uuid4().hex[:12]
TOKENS = {
    "ok": "tok-ok-" + uuid.uuid4().hex,
    "denied": "tok-denied-" + uuid.uuid4().hex,
    "broken": "tok-broken-" + uuid.uuid4().hex,
    "raises": "tok-raises-" + uuid.uuid4().hex,
    "bug": "tok-bug-" + uuid.uuid4().hex,
}
REFRESH = "rt-" + uuid.uuid4().hex
SUPABASE_KEY = "sb-service-key-" + uuid.uuid4().hex
CLIENT_SECRET = "x-client-secret-" + uuid.uuid4().hex


@pytest.fixture
def captured_logs() -> Any:
    """The daemon's structlog output as JSON lines in memory; the previous config restored after."""
    old = structlog.get_config()
    stream = io.StringIO()
    configure(level="debug", fmt="json", stream=stream)
    yield stream
    structlog.configure(**old)


async def _run_with_secrets_in_error_paths(
    db: asyncpg.Connection, watcher: Watcher, user_dsn: str, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    raise_with: str,
) -> list[str]:
    from scheduler_daemon.daemon import Daemon

    def reply(a: Arrival) -> Reply:
        kind = a.json()["content"]
        if kind == "denied":  # a platform that echoes the credential it refuses
            return Reply(401, {"error": f"invalid token {TOKENS['denied']}"})
        if kind == "broken":
            return Reply(500, {"error": f"upstream failed for Bearer {TOKENS['broken']}"})
        return Reply(200, {"id": "ok-1"})

    real_publish = webhook.WebhookAdapter.publish

    async def publish(self: Any, post: Any, connection: Any, ctx: Any) -> Any:
        # An adapter that quotes what it sent in its error: the connection's own secrets,
        # plus ``raise_with`` (the settings' keys, for the test about those).
        if post.content == "raises":
            raise ContentRejectedError(f"rejected: token {connection.access_token} {raise_with}")
        if post.content == "bug":
            raise RuntimeError(f"adapter bug while using {connection.access_token} (refresh "
                               f"{connection.refresh_token}) {raise_with}")
        return await real_publish(self, post, connection, ctx)

    monkeypatch.setattr(webhook.WebhookAdapter, "publish", publish)
    async with Receiver(reply) as rx:
        posts = []
        for kind, token in TOKENS.items():
            user = uuid.uuid4()
            campaign = await db.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
            await db.execute(
                "INSERT INTO platform_connections (user_id, platform, access_token, refresh_token, metadata)"
                " VALUES ($1, 'webhook', $2, $3, $4::jsonb)", user, token, REFRESH, json.dumps({"url": rx.url + "/h"}))
            posts.append(await insert_post(db, campaign, soon(400), content=kind))
        platforms = replace(settings.platforms, supabase_url="https://project.supabase.test",
                            supabase_service_key=SUPABASE_KEY,
                            clients={"x": ClientCredentials("x-client-id", CLIENT_SECRET)})
        daemon = Daemon(replace(settings, platforms=platforms, http_timeout_seconds=2.0), user_dsn)
        task = asyncio.create_task(daemon.run())
        try:
            await watcher.wait_all(posts, "published", "draft", timeout=20)
        finally:
            daemon.stop()
            async with asyncio.timeout(15):
                await task
    return [r["error_message"] or "" for r in await db.fetch("SELECT error_message FROM content_posts")]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


async def test_no_token_or_database_password_in_any_log_line(
    db: asyncpg.Connection, watcher: Watcher, dsn: str, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    captured_logs: io.StringIO,
) -> None:
    name = f"sd_logs_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{DB_PASSWORD}' IN ROLE scheduler_daemon")
    try:
        user_dsn = as_user(dsn, name, DB_PASSWORD)
        await _run_with_secrets_in_error_paths(
            db, watcher, user_dsn, settings, monkeypatch, raise_with="")
    finally:
        await db.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'")
        await db.execute(f"DROP ROLE {name}")
    lines = captured_logs.getvalue().splitlines()
    assert len(lines) > 10, "the run logged (almost) nothing: the capture is broken"
    assert any('"adapter raised an unexpected error"' in line or "Traceback" in line for line in lines)
    secrets = [DB_PASSWORD, REFRESH, *TOKENS.values()]
    leaking = [(line[:300], _leaks(line, secrets)) for line in lines if _leaks(line, secrets)]
    assert leaking == [], leaking
    for line in lines:
        json.loads(line)  # every line is JSON (journald, log shippers)


async def test_configured_keys_never_reach_a_log_line(
    db: asyncpg.Connection, watcher: Watcher, dsn: str, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    captured_logs: io.StringIO,
) -> None:
    """The Supabase service key and OAuth client secrets come from the settings, not from a
    connection row: an error text that carries one (a storage or token-refresh error echoing
    its request) must be scrubbed as well."""
    await _run_with_secrets_in_error_paths(
        db, watcher, dsn, settings, monkeypatch, raise_with=f"apikey={SUPABASE_KEY} client_secret {CLIENT_SECRET}")
    lines = captured_logs.getvalue().splitlines()
    leaking = [line[:300] for line in lines if _leaks(line, [SUPABASE_KEY, CLIENT_SECRET])]
    assert leaking == [], leaking


async def test_no_token_in_stored_error_messages(
    db: asyncpg.Connection, watcher: Watcher, dsn: str, settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """error_message is shown in the app (and readable by anyone who can read the row): a
    platform answer echoing the token must not carry it there either."""
    messages = await _run_with_secrets_in_error_paths(
        db, watcher, dsn, settings, monkeypatch, raise_with="")
    leaking = [m[:300] for m in messages if _leaks(m, [*TOKENS.values(), REFRESH])]
    assert leaking == [], leaking


# -- TLS to the database ----------------------------------------------------------------------


def _certificate(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("TLS test needs the openssl command to make a throwaway certificate")
    crt, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-new", "-x509", "-days", "2", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )
    return crt, key


@pytest.fixture
def tls_server() -> Any:
    """A throwaway cluster with ssl=on (the system PostgreSQL: pgserver's build has no SSL);
    yields (tcp uri of the 'postgres' database, CA certificate)."""
    import socket

    if system_bin() is None:
        pytest.skip("TLS test needs a PostgreSQL built with SSL (/usr/lib/postgresql/*/bin); "
                    "the embedded pgserver build has none")
    directory = Path(tempfile.mkdtemp(prefix="scheduler-daemon-tls-"))
    cluster = None
    try:
        crt, key = _certificate(directory)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cluster = TlsCluster(directory, crt, key, port)
        yield cluster.uri, crt
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(directory, ignore_errors=True)


async def _ssl_in_use(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))


async def test_tls_require_and_verify_full(tls_server: Any, settings: Settings) -> None:
    uri, ca = tls_server
    url = await ensure_database(uri, "tls")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute(WATCH_SQL)
    finally:
        await conn.close()
    tcp = url
    for query in ("sslmode=require", f"sslmode=verify-full&sslrootcert={ca}", f"sslmode=verify-ca&sslrootcert={ca}"):
        pool = await create_pool(f"{tcp}?{query}", instance_id="tls-test", max_size=2)
        try:
            assert await _ssl_in_use(pool), query
        finally:
            await pool.close()
    # verify-full refuses a certificate the CA file does not vouch for.
    other_ca, _ = _certificate(Path(tempfile.mkdtemp(prefix="scheduler-daemon-other-ca-")))
    with pytest.raises(Exception) as refused:
        await create_pool(f"{tcp}?sslmode=verify-full&sslrootcert={other_ca}", instance_id="tls-test", max_size=1)
    assert "certificate" in str(refused.value).lower() or "ssl" in type(refused.value).__name__.lower()
    # And the whole daemon over verify-full: LISTEN connection and pool both encrypted.
    from scheduler_daemon.daemon import Daemon

    admin = await asyncpg.connect(url)
    watcher = await Watcher(await asyncpg.connect(url)).start()
    try:
        async with Receiver() as rx:
            campaign = await webhook_campaign(admin, rx.url)
            post = await insert_post(admin, campaign, soon(500))
            daemon = Daemon(settings, f"{tcp}?sslmode=verify-full&sslrootcert={ca}")
            task = asyncio.create_task(daemon.run())
            try:
                await watcher.wait(post, "published", timeout=15)
                encrypted = await admin.fetch(
                    "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
                    " WHERE a.application_name LIKE 'scheduler-daemon:%'")
            finally:
                daemon.stop()
                async with asyncio.timeout(15):
                    await task
        assert encrypted and all(r["ssl"] for r in encrypted), encrypted
    finally:
        await watcher.conn.close()
        await admin.close()
