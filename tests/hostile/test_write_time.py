"""Hostile input refused at write time, and the daemon's columns kept from tenants
(issue 10, items 1 and 2: migrations/004_tenant_input.sql).

* Each write-time rule refuses its bad input, on INSERT and on UPDATE, with what a Supabase
  client shows (SQLSTATE, message, hint, the rule in the constraint field, the column);
  the edge values pass; the checks hold in a tenant session whose search_path tries to
  shadow them.
* Rows written before 004 stay as they are: an UPDATE is checked on what it changes, the
  daemon's own writes on them land, a tenant scheduling one gets it checked whole;
  ``doctor`` lists them (per rule: count and first ids) and changes nothing; the daemon
  turns the scheduled ones into drafts with a reason while a bystander's post goes out.
* A tenant (Supabase's ``anon``/``authenticated``, faked with Supabase's default grants)
  cannot write the daemon's columns, insert a published post, truncate, or touch
  scheduler_migrations (which the anon key could empty before 004); a role left with
  table-level grants gets the daemon's columns reset; the owner and service_role are
  trusted; 004 applied again changes nothing.
* End to end under RLS: tenants write through ``authenticated``, the daemon runs as a login
  user in ``scheduler_daemon``; every poison write is refused, every bystander post is
  published once and never early, and the daemon stays up.
* Hypothesis: whatever row the database accepts, the daemon's own reading of it (the boot
  load's due instant, the claim, ``db/rows.py``) arms it or rejects it with a
  reason and never crashes; every documented-good row is accepted and armed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import available_timezones

import asyncpg
import pytest
import structlog
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scheduler_daemon.cli import main
from scheduler_daemon.db import rows
from scheduler_daemon.db.migrate import available, migrate, pending
from scheduler_daemon.db.repository import init_connection
from scheduler_daemon.db.sql import q
from scheduler_daemon.testing.postgres import WATCH_SQL
from scheduler_daemon.testing.receiver import Receiver
from support.helpers import Watcher, insert_post, make_user, migrate_through, soon

UTC = dt.timezone.utc
BEFORE_004 = "003_roles_rls.sql"
MIGRATION_004 = next(m.sql for m in available() if m.name == "004_tenant_input.sql")

# Supabase as far as these tests need it: its API roles (service_role bypasses RLS),
# auth.uid() from the JWT, and its default grants of everything in public to the API roles.
FAKE_SUPABASE = """
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- roles are per cluster: another test made it
        END;
    END LOOP;
    ALTER ROLE service_role BYPASSRLS;
END
$$;
CREATE SCHEMA IF NOT EXISTS auth;
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
    $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
"""

MakeDatabase = Callable[..., Awaitable[str]]


@pytest.fixture
async def supabase(databases: Any) -> AsyncIterator[MakeDatabase]:
    """``await supabase()``: a new database like a Supabase project, migrated;
    ``await supabase(through=BEFORE_004)``: as it was before 004."""
    made: list[str] = []

    async def make(through: str | None = None) -> str:
        url = await databases.create_empty()
        made.append(url)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(FAKE_SUPABASE)
            await (migrate(conn) if through is None else migrate_through(conn, through))
            await conn.execute(WATCH_SQL)
        finally:
            await conn.close()
        return url

    yield make
    for url in made:
        await databases.drop(url)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def as_tenant(conn: asyncpg.Connection, user: uuid.UUID | None, role: str = "authenticated") -> None:
    """The session a Supabase client gets: ``role``, with ``user`` as the JWT's subject."""
    await conn.execute("RESET ROLE")
    await conn.execute("SELECT set_config('request.jwt.claim.sub', $1, false)", str(user) if user else "")
    await conn.execute(f"SET ROLE {role}")


@contextlib.asynccontextmanager
async def daemon_login(url: str) -> AsyncIterator[str]:
    """A LOGIN user IN ROLE scheduler_daemon (migrations/003's least privilege); yields its URL."""
    name, password = f"sd_wt_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    async with connected(url) as admin:
        await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE scheduler_daemon")
        try:
            parts = urlsplit(url)
            host = parts.netloc.rpartition("@")[2]
            yield urlunsplit((parts.scheme, f"{quote(name)}:{password}@{host}", parts.path, parts.query, ""))
        finally:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name)
            await admin.execute(f"DROP ROLE {name}")


async def refused(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.PostgresError:
    with pytest.raises(asyncpg.PostgresError) as raised:
        await conn.execute(sql, *args)
    return raised.value


# -- one row with every column a rule looks at, as text the way a client sends it -------------

COLUMN_TYPES = {"status": "text", "scheduled_date": "date", "scheduled_time": "time", "timezone": "text",
                "content": "text", "media": "jsonb", "retry_at": "timestamptz"}
GOOD = {"status": "scheduled", "scheduled_date": "2030-06-01", "scheduled_time": "10:00:00",
        "timezone": "Europe/Paris", "content": "hello", "media": "[]", "retry_at": None}
INSERT_ROW = (
    "INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time, timezone, content,"
    " media, retry_at) VALUES ($1, 'webhook', $2, $3::text::date, $4::text::time, $5, $6, $7::text::jsonb,"
    " $8::text::timestamptz) RETURNING id"
)


def row_args(campaign: uuid.UUID | None, **values: Any) -> list[Any]:
    merged = {**GOOD, **values}
    return [campaign, *(merged[c] for c in ("status", "scheduled_date", "scheduled_time", "timezone", "content",
                                            "media", "retry_at"))]


async def insert_row(conn: asyncpg.Connection, campaign: uuid.UUID | None, **values: Any) -> uuid.UUID:
    post_id: uuid.UUID = await conn.fetchval(INSERT_ROW, campaign, *row_args(campaign, **values)[1:])
    return post_id


def update_column(column: str) -> str:
    return f"UPDATE content_posts SET {column} = $2::text::{COLUMN_TYPES[column]} WHERE id = $1"


def media(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


ZONE = "unknown timezone {!r}: use an IANA name such as 'Europe/Paris'"
OUT_OF_RANGE = "scheduled_date {} is out of range: a post is scheduled between 2000-01-01 and 2999-12-31"
HINTS = {
    "status": "Statuses are lower case; a post the daemon should publish is 'scheduled'.",
    "timezone": "Zone names are case-sensitive",
    "scheduled_date": "scheduled_date is the local date in the post's timezone.",
    "scheduled_time": "Midnight at the end of a day is 00:00:00 of the next day.",
    "content": "Each platform's own limit",
    "media": 'media is a JSON array of objects such as {"url": "https://…", "alt": "…", "mime": "image/png"}',
    "retry_at": "retry_at is set by the daemon when it postpones a post",
}
REFUSALS = [
    pytest.param("status", "Scheduled",
                 "status 'Scheduled' is not one of draft, scheduled, publishing, published", id="status-capital-S"),
    pytest.param("status", "", "status '' is not one of draft, scheduled, publishing, published", id="status-empty"),
    pytest.param("timezone", "Mars/Olympus", ZONE.format("Mars/Olympus"), id="zone-unknown"),
    pytest.param("timezone", "europe/paris", ZONE.format("europe/paris"), id="zone-wrong-case"),
    pytest.param("timezone", "PST", ZONE.format("PST"), id="zone-an-abbreviation"),
    pytest.param("timezone", "XYZ+3", ZONE.format("XYZ+3"), id="zone-a-posix-rule"),
    pytest.param("timezone", "localtime", ZONE.format("localtime"), id="zone-localtime"),
    pytest.param("timezone", " UTC", ZONE.format(" UTC"), id="zone-padded"),
    pytest.param("scheduled_date", "10000-01-01", OUT_OF_RANGE.format("10000-01-01"), id="date-year-10000"),
    pytest.param("scheduled_date", "0044-03-15 BC", OUT_OF_RANGE.format("0044-03-15 BC"), id="date-bc"),
    pytest.param("scheduled_date", "infinity", OUT_OF_RANGE.format("infinity"), id="date-infinity"),
    pytest.param("scheduled_date", "1999-12-31", OUT_OF_RANGE.format("1999-12-31"), id="date-before-2000"),
    pytest.param("scheduled_time", "24:00:00",
                 "scheduled_time 24:00:00 is not a time of day: use 00:00:00 to 23:59:59.999999", id="time-24h"),
    pytest.param("content", "👍" * 100_001, "content is 100001 characters; the most a post may have is 100000",
                 id="content-over-the-cap"),
    pytest.param("media", '{"url": "https://example.com/a.png"}',
                 "media must be a JSON array of {url | storage_path, alt, mime}", id="media-not-an-array"),
    pytest.param("media", '["https://example.com/a.png"]',
                 "media[0] must be an object with url or storage_path", id="media-item-not-an-object"),
    pytest.param("media", media({"alt": "a"}), "media[0] needs a url or a storage_path", id="media-no-url"),
    pytest.param("media", media({"url": "https://example.com/a.png"}, {"url": "javascript:alert(1)"}),
                 "media[1].url must be an http:// or https:// URL", id="media-url-scheme"),
    pytest.param("media", media({"url": "https://exa mple.com/a.png"}),
                 "media[0].url must be an http:// or https:// URL", id="media-url-with-a-space"),
    pytest.param("media", media({"url": 7}), "media[0].url must be a string", id="media-url-a-number"),
    pytest.param("media", media({"storage_path": "b/a.png", "alt": ["x"]}), "media[0].alt must be a string",
                 id="media-alt-a-list"),
    pytest.param("media", media(*[{"url": f"https://example.com/{n}.png"} for n in range(21)]),
                 "media has 21 items; a post may have at most 20", id="media-21-items"),
    pytest.param("media", media({"url": "https://example.com/" + "a" * 2029}),
                 "media[0].url is longer than 2048 characters", id="media-url-too-long"),
    pytest.param("media", media({"storage_path": "b/" + "p" * 1023}),
                 "media[0].storage_path must be a path of at most 1024 characters", id="media-path-too-long"),
    pytest.param("media", media({"url": "https://example.com/a.png", "alt": "a" * 2001}),
                 "media[0].alt is longer than 2000 characters", id="media-alt-too-long"),
    pytest.param("media", media({"url": "https://example.com/a.png", "mime": "image/png\r\nX-Injected: 1"}),
                 "media[0].mime must be a media type such as image/png", id="media-mime-header-injection"),
    pytest.param("media", media({"url": "https://example.com/a.png", "notes": "n" * 10_000}),
                 "media[0] is longer than 10000 characters", id="media-item-too-big"),
    pytest.param("retry_at", "9999-12-31 23:00:00-12",
                 "retry_at 10000-01-01 11:00:00+00 is out of range: it must be between 2000-01-01 and 2999-12-31 UTC",
                 id="retry-at-past-year-9999"),
    pytest.param("retry_at", "-infinity",
                 "retry_at -infinity is out of range: it must be between 2000-01-01 and 2999-12-31 UTC",
                 id="retry-at-minus-infinity"),
]


@pytest.mark.parametrize(("column", "value", "message"), REFUSALS)
async def test_each_rule_refuses_its_input_on_insert_and_update_with_what_the_frontend_sees(
    db: asyncpg.Connection, column: str, value: str, message: str
) -> None:
    await db.execute("SET TimeZone TO 'UTC'")  # how the refused retry_at is spelled back
    campaign, _ = await make_user(db)
    kept = await insert_row(db, campaign)
    for error in (await refused(db, INSERT_ROW, *row_args(campaign, **{column: value})),
                  await refused(db, update_column(column), kept, value)):
        assert isinstance(error, asyncpg.CheckViolationError), error
        assert (error.sqlstate, error.constraint_name, error.column_name, error.table_name) == (
            "23514", f"scheduler_posts_{column}_check", column, "content_posts")
        assert error.message == message
        assert HINTS[column] in error.hint
        assert error.detail.startswith("post ")
    assert [r["id"] for r in await db.fetch("SELECT id FROM content_posts")] == [kept]
    assert await db.fetchval(f"SELECT {column} IS NOT DISTINCT FROM $2::text::{COLUMN_TYPES[column]}"
                             f" FROM content_posts WHERE id = $1", kept, GOOD[column]), "the refused update landed"


ACCEPTED = [
    *(("status", s) for s in ("draft", "scheduled", "publishing", "published")),
    ("timezone", "UTC"), ("timezone", "Etc/GMT+12"), ("timezone", "America/Indiana/Indianapolis"),
    ("timezone", "Pacific/Kiritimati"),
    ("scheduled_date", "2000-01-01"), ("scheduled_date", "2999-12-31"), ("scheduled_date", None),
    ("scheduled_time", "00:00:00"), ("scheduled_time", "23:59:59.999999"), ("scheduled_time", None),
    ("content", "👍" * 100_000), ("content", ""), ("content", None),
    ("media", "[]"), ("media", media(*[{"url": f"https://example.com/{n}.png"} for n in range(20)])),
    ("media", media({"storage_path": "bucket/a.png", "alt": None, "mime": None})),
    ("media", media({"url": "https://example.com/a.png", "alt": "a" * 2000, "mime": "image/svg+xml",
                     "width": 640, "kind": "image"})),  # keys of the frontend's own are kept
    ("media", media({"url": "", "storage_path": "bucket/a.png"})),
    ("retry_at", "2000-01-01 00:00:00+00"), ("retry_at", "2999-12-31 23:59:59+00"),
]


async def test_the_edge_values_pass(db: asyncpg.Connection) -> None:
    campaign, _ = await make_user(db)
    for column, value in ACCEPTED:
        post = await insert_row(db, campaign, **{column: value})
        await db.execute(update_column(column), await insert_row(db, campaign), value)
        assert await db.fetchval(f"SELECT {column} IS NOT DISTINCT FROM $2::text::{COLUMN_TYPES[column]}"
                                 f" FROM content_posts WHERE id = $1", post, value), (column, value)


async def test_the_checks_hold_in_a_session_whose_search_path_shadows_them(db: asyncpg.Connection) -> None:
    """A role that can create functions puts look-alikes of 004's helpers first in its own
    search_path: the triggers still call the real ones (their search_path is pinned)."""
    role, schema = f"sd_frontend_{uuid.uuid4().hex[:8]}", f"shadow_{uuid.uuid4().hex[:8]}"
    await db.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        await db.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
        await db.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        await db.execute(f"GRANT SELECT, INSERT ON content_posts, content_campaigns TO {role}")
        campaign, _ = await make_user(db)
        await db.execute(f"SET ROLE {role}")
        await db.execute(f"SET search_path = {schema}, public")
        await db.execute(f"CREATE FUNCTION {schema}.scheduler_timezone_known(tz text) RETURNS boolean"
                         " LANGUAGE sql AS 'SELECT true'")
        await db.execute(f"CREATE FUNCTION {schema}.scheduler_writer_is_tenant(rel regclass) RETURNS boolean"
                         " LANGUAGE sql AS 'SELECT false'")
        error = await refused(db, INSERT_ROW, *row_args(campaign, timezone="Mars/Olympus"))
        assert error.message == ZONE.format("Mars/Olympus")
        post = await db.fetchval("INSERT INTO content_posts (campaign_id, platform, attempt_count, claimed_by)"
                                 " VALUES ($1, 'webhook', 2147483647, 'me') RETURNING id", campaign)
        await db.execute("RESET ROLE")
        await db.execute("RESET search_path")
        assert tuple(await db.fetchrow("SELECT attempt_count, claimed_by FROM content_posts WHERE id = $1",
                                       post)) == (0, None)
    finally:
        await db.execute("RESET ROLE")
        await db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await db.execute(f"DROP OWNED BY {role}")
        await db.execute(f"DROP ROLE {role}")


# -- rows written before 004 ---------------------------------------------------------------------

# Rows as text: Python cannot even decode some of them (year 10000, 24:00:00).
SNAPSHOT = "SELECT p::text FROM content_posts p ORDER BY id"
# One bad row per rule, as a database may hold them from before 004.
OLD_ROWS = {
    "scheduler_posts_status_check": {"status": "Scheduled"},
    "scheduler_posts_timezone_check": {"timezone": "Mars/Olympus"},
    "scheduler_posts_scheduled_date_check": {"scheduled_date": "10000-01-01"},
    "scheduler_posts_scheduled_time_check": {"scheduled_time": "24:00:00"},
    "scheduler_posts_content_check": {"content": "x" * 100_001},
    "scheduler_posts_media_check": {"media": media({"alt": "no url"})},
    "scheduler_posts_retry_at_check": {"retry_at": "9999-12-31 23:00:00-12"},
}


async def test_rows_written_before_004_stay_and_a_write_is_checked_on_what_it_changes(supabase: MakeDatabase) -> None:
    url = await supabase(through=BEFORE_004)
    alice = uuid.uuid4()
    async with connected(url) as admin, connected(url) as app, daemon_login(url) as daemon_url:
        campaign = await admin.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", alice)
        zone = await insert_row(admin, campaign, timezone="Mars/Olympus")
        long = await insert_row(admin, campaign, content="x" * 100_001, scheduled_date="2020-01-01")
        draft = await insert_row(admin, campaign, status="draft", timezone="Mars/Olympus")
        snapshot = await admin.fetch(SNAPSHOT)
        await migrate_through(admin, "004_tenant_input.sql")
        assert await admin.fetch(SNAPSHOT) == snapshot, "004 touched a row"
        await migrate(admin)  # the later ones (006 adds columns: rows gain NULLs, no value changes)
        assert await admin.fetchval("SELECT convalidated FROM pg_constraint"
                                    " WHERE conname = 'scheduler_posts_status_check'") is False

        # The daemon's own statements on them land: the move to draft with a reason, the claim.
        async with connected(daemon_url) as daemon:
            version = await admin.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", zone)
            await daemon.execute(q("reject"), [zone], [version], ["unknown timezone 'Mars/Olympus'"])
            version = await admin.fetchval("SELECT schedule_version FROM content_posts WHERE id = $1", long)
            [claimed] = await daemon.fetch(q("claim"), [long], [version], "vm1", *CLAIM_ANY)
            assert claimed["verdict"] == "due" and claimed["id"] == long
        assert await admin.fetchval("SELECT status FROM content_posts WHERE id = $1", zone) == "draft"

        # The tenant edits what is fine; what it changes is checked; scheduling checks the row whole.
        await as_tenant(app, alice)
        assert await app.execute("UPDATE content_posts SET content = 'fixed later' WHERE id = $1", draft) == "UPDATE 1"
        error = await refused(app, "UPDATE content_posts SET timezone = 'Mars/Venus' WHERE id = $1", draft)
        assert error.message == ZONE.format("Mars/Venus")
        error = await refused(app, "UPDATE content_posts SET status = 'scheduled' WHERE id = $1", draft)
        assert (error.constraint_name, error.message) == ("scheduler_posts_timezone_check", ZONE.format("Mars/Olympus"))
        assert await app.execute("UPDATE content_posts SET status = 'scheduled', timezone = 'Asia/Tokyo'"
                                 " WHERE id = $1", draft) == "UPDATE 1"


async def run_doctor(url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                     *args: str) -> tuple[int, str]:
    """``scheduler-daemon doctor`` in-process (in a thread: main owns its event loop)."""
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    capsys.readouterr()
    saved = structlog.get_config()
    try:
        code = await asyncio.to_thread(main, ["doctor", *args])
    finally:
        structlog.configure(**saved)
    return code, capsys.readouterr().out


async def test_doctor_lists_the_rows_that_break_a_rule_and_changes_nothing(
    supabase: MakeDatabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await supabase(through=BEFORE_004)
    async with connected(url) as admin:
        campaign, _ = await make_user(admin)
        bad = {rule: [await insert_row(admin, campaign, **values)] for rule, values in OLD_ROWS.items()}
        bad["scheduler_posts_timezone_check"] += [await insert_row(admin, campaign, timezone="america/new_york")
                                                  for _ in range(6)]
        bad["scheduler_posts_media_check"].append(await insert_row(  # breaks two rules
            admin, campaign, media="{}", content="y" * 100_001))
        bad["scheduler_posts_content_check"].append(bad["scheduler_posts_media_check"][-1])
        await insert_row(admin, campaign, status="published", timezone="Mars/Olympus")  # history: not listed
        await insert_row(admin, campaign)
        await migrate(admin)
        snapshot = await admin.fetch(SNAPSHOT)

        code, out = await run_doctor(url, monkeypatch, capsys, "--json")
        check = next(c for c in json.loads(out)["checks"] if c["name"] == "input rules")
        assert code == 0 and check["status"] == "warn"
        assert check["data"]["rules"] == {
            rule: {"posts": len(ids), "ids": sorted(str(i) for i in ids)[:5]} for rule, ids in bad.items()}
        assert check["data"]["unlisted_zones"] == []

        code, out = await run_doctor(url, monkeypatch, capsys)
        zone_ids = ", ".join(sorted(str(i) for i in bad["scheduler_posts_timezone_check"])[:5])
        assert "warn  input rules: rows written before migrations/004 are left as they are" in out
        assert f"scheduler_posts_timezone_check: 7 post(s), e.g. {zone_ids}\n" in out
        assert await admin.fetch(SNAPSHOT) == snapshot, "doctor changed a row"

        # A zone that a tzdata update brings is refused until the owner refreshes the list.
        await admin.execute("CREATE OR REPLACE FUNCTION scheduler_timezone_known(tz text) RETURNS boolean"
                            " LANGUAGE sql AS $$ SELECT tz NOT IN ('Europe/Kyiv', 'UTC') $$")
        code, out = await run_doctor(url, monkeypatch, capsys, "--json")
        check = next(c for c in json.loads(out)["checks"] if c["name"] == "input rules")
        assert check["data"]["unlisted_zones"] == ["Europe/Kyiv", "UTC"]
        assert "the tables' owner runs SELECT scheduler_timezones_refresh();" in check["detail"]
        assert await admin.fetchval("SELECT scheduler_timezones_refresh()") > 400
        assert await admin.fetchval("SELECT scheduler_timezone_known('Europe/Kyiv')")


async def test_the_daemon_ends_old_bad_rows_as_drafts_with_a_reason_while_a_bystander_goes_out(
    supabase: MakeDatabase, watcher_on: Any, daemon_on: Any
) -> None:
    """Bad scheduled rows from before 004 (for a bad year, 24:00 and the counters at their
    maximum see tests/hostile/test_untrusted_rows.py) are drafts with a reason; its
    writes on them pass the checks; a bystander's post due at the same instant goes out."""
    url = await supabase(through=BEFORE_004)
    async with connected(url) as admin, Receiver() as rx:
        campaign, _ = await make_user(admin, "webhook", metadata={"url": rx.url})
        bystander_campaign, _ = await make_user(admin, "webhook", metadata={"url": rx.url})
        due = soon(0.5)
        old = {
            "unknown timezone 'Mars/Olympus'": await insert_post(admin, campaign, due, content="zone"),
            "media[0] needs a url or a storage_path": await insert_post(
                admin, campaign, due, media=media({"alt": "a"})),
            "content is 100001 characters; the most this daemon accepts is 100000": await insert_post(
                admin, campaign, due, content="x" * 100_001),
        }
        await admin.execute("UPDATE content_posts SET timezone = 'Mars/Olympus' WHERE content = 'zone'")
        typo = await insert_post(admin, campaign, due, status="Scheduled")
        await migrate(admin)
        watcher = await watcher_on(url)
        bystander = await insert_post(admin, bystander_campaign, due, content="bystander")
        async with daemon_login(url) as daemon_url:
            handle = await daemon_on(daemon_url)
            await watcher.wait(bystander, "published")
            await watcher.wait_all(list(old.values()), "draft")
            assert not handle.task.done(), "the daemon stopped"
            await handle.stop()
        for reason, post in old.items():
            assert reason in await admin.fetchval("SELECT error_message FROM content_posts WHERE id = $1", post)
        assert await admin.fetchval("SELECT status FROM content_posts WHERE id = $1", typo) == "Scheduled"
    assert [a.json()["content"] for a in rx.arrivals] == ["bystander"]


@pytest.fixture
async def watcher_on() -> AsyncIterator[Callable[[str], Awaitable[Watcher]]]:
    """``await watcher_on(url)``: a Watcher on that database, closed after the test."""
    conns: list[asyncpg.Connection] = []

    async def start(url: str) -> Watcher:
        conns.append(await asyncpg.connect(url))
        return await Watcher(conns[-1]).start()

    yield start
    for conn in conns:
        await conn.close()


# -- tenants and the daemon's columns ------------------------------------------------------------

DAEMON_POST_COLUMNS = {
    "attempt_count": "2147483647", "schedule_version": "9223372036854775807", "claimed_by": "'evil'",
    "claimed_at": "now()", "publish_state": """'{"container_id": "forged"}'""", "retry_at": "now()",
    "published_at": "now()", "platform_post_id": "'forged'", "platform_post_url": "'https://evil.example/p'",
}
TENANT_POST_COLUMNS = {"id", "campaign_id", "platform", "connection_id", "content", "media", "status",
                       "scheduled_date", "scheduled_time", "timezone", "error_message", "created_at", "updated_at",
                       "thread", "first_comment", "platform_options"}  # the last three: migrations/006


async def test_a_tenant_cannot_write_the_daemons_columns_nor_insert_a_published_post(supabase: MakeDatabase) -> None:
    url = await supabase()
    alice = uuid.uuid4()
    async with connected(url) as admin, connected(url) as app:
        for role in ("anon", "authenticated"):  # what each may do, as catalogued
            for column in TENANT_POST_COLUMNS | set(DAEMON_POST_COLUMNS):
                for privilege in ("INSERT", "UPDATE"):
                    allowed = column in TENANT_POST_COLUMNS and not (privilege == "UPDATE" and column == "id")
                    assert await admin.fetchval("SELECT has_column_privilege($1, 'content_posts', $2, $3)",
                                                role, column, privilege) is allowed, (role, column, privilege)
            for privilege, allowed in (("SELECT", True), ("INSERT", False), ("UPDATE", False), ("TRUNCATE", False),
                                       ("TRIGGER", False)):
                assert await admin.fetchval("SELECT has_table_privilege($1, 'content_posts', $2)",
                                            role, privilege) is allowed, (role, privilege)

        await as_tenant(app, alice)
        campaign = await app.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", alice)
        connection = await app.fetchval("INSERT INTO platform_connections (user_id, platform, access_token)"
                                        " VALUES ($1, 'webhook', 'whsec-1') RETURNING id", alice)
        post = await insert_post(app, campaign, soon(3600), connection_id=connection)
        for column, value in DAEMON_POST_COLUMNS.items():
            for sql in (f"INSERT INTO content_posts (campaign_id, platform, {column}) VALUES ($1, 'webhook', {value})",
                        f"UPDATE content_posts SET {column} = {value} WHERE id = $1"):
                error = await refused(app, sql, campaign if sql.startswith("INSERT") else post)
                assert isinstance(error, asyncpg.InsufficientPrivilegeError), (column, error)
        for sql in ("INSERT INTO platform_connections (user_id, platform, needs_reconnect) VALUES ($1, 'x', true)",
                    "UPDATE platform_connections SET needs_reconnect = true WHERE user_id = $1",
                    "UPDATE content_posts SET id = gen_random_uuid() WHERE campaign_id IN"
                    " (SELECT id FROM content_campaigns WHERE user_id = $1)"):
            assert isinstance(await refused(app, sql, alice), asyncpg.InsufficientPrivilegeError), sql
        for status in ("publishing", "published"):
            error = await refused(app, "INSERT INTO content_posts (campaign_id, platform, status) VALUES ($1, 'x', $2)",
                                  campaign, status)
            assert isinstance(error, asyncpg.InsufficientPrivilegeError)
            assert error.message == f"only the scheduler daemon sets status '{status}'"
            assert error.hint == "Insert the post as 'draft' or 'scheduled'."
        for table in ("content_posts", "content_campaigns", "platform_connections", "publish_attempts"):
            assert isinstance(await refused(app, f"TRUNCATE {table}"), asyncpg.InsufficientPrivilegeError)
        # What the frontend writes still works.
        assert await app.execute(
            "UPDATE content_posts SET content = 'edited', media = $2::jsonb, status = 'draft', error_message = NULL,"
            " scheduled_date = '2031-01-01', scheduled_time = '08:00', timezone = 'Asia/Tokyo' WHERE id = $1",
            post, media({"url": "https://example.com/a.png"})) == "UPDATE 1"
        assert await app.execute("UPDATE platform_connections SET access_token = 'whsec-2', metadata = '{}'"
                                 " WHERE id = $1", connection) == "UPDATE 1"
        assert await app.fetchval("SELECT attempt_count FROM content_posts WHERE id = $1", post) == 0


async def test_the_frontends_own_columns_stay_writable(supabase: MakeDatabase) -> None:
    """Columns a frontend added are granted with the rest; one added after 004 waits for a
    GRANT of its own or for 004 to be applied again."""
    url = await supabase(through=BEFORE_004)
    alice = uuid.uuid4()
    async with connected(url) as admin, connected(url) as app:
        await admin.execute("ALTER TABLE content_posts ADD COLUMN title text")
        await migrate(admin)
        await admin.execute("ALTER TABLE content_posts ADD COLUMN hashtags text[]")
        await as_tenant(app, alice)
        campaign = await app.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", alice)
        post = await app.fetchval("INSERT INTO content_posts (campaign_id, platform, title) VALUES ($1, 'x', 'mine')"
                                  " RETURNING id", campaign)
        assert await app.execute("UPDATE content_posts SET title = 'renamed' WHERE id = $1", post) == "UPDATE 1"
        hashtags = "UPDATE content_posts SET hashtags = '{a}' WHERE id = $1"
        assert isinstance(await refused(app, hashtags, post), asyncpg.InsufficientPrivilegeError)
        await admin.execute(MIGRATION_004)
        assert await app.execute(hashtags, post) == "UPDATE 1"


async def test_a_tenant_insert_gets_the_daemons_columns_reset_even_where_grants_are_table_wide(
    supabase: MakeDatabase,
) -> None:
    """Where column grants could not be narrowed (another role granted them, a frontend role
    of the operator's own), the insert trigger still resets every column of the daemon's;
    the owner and service_role (BYPASSRLS: a trusted backend) keep what they write."""
    url = await supabase()
    alice = uuid.uuid4()
    poison = ", ".join(DAEMON_POST_COLUMNS)
    values = ", ".join(DAEMON_POST_COLUMNS.values())
    async with connected(url) as admin, connected(url) as app:
        await admin.execute("GRANT INSERT, UPDATE ON content_posts, platform_connections TO authenticated")
        await as_tenant(app, alice)
        campaign = await app.fetchval("INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", alice)
        post = await app.fetchval(f"INSERT INTO content_posts (campaign_id, platform, {poison}) VALUES ($1, 'webhook',"
                                  f" {values}) RETURNING id", campaign)
        connection = await app.fetchval("INSERT INTO platform_connections (user_id, platform, needs_reconnect)"
                                        " VALUES ($1, 'webhook', true) RETURNING id", alice)
        assert dict(await admin.fetchrow(f"SELECT {poison} FROM content_posts WHERE id = $1", post)) == {
            "attempt_count": 0, "schedule_version": 0, "claimed_by": None, "claimed_at": None,
            "publish_state": "{}", "retry_at": None, "published_at": None, "platform_post_id": None,
            "platform_post_url": None}
        assert await admin.fetchval("SELECT needs_reconnect FROM platform_connections WHERE id = $1",
                                    connection) is False
        await as_tenant(app, alice, "service_role")
        for conn in (admin, app):
            trusted = await conn.fetchval(f"INSERT INTO content_posts (campaign_id, platform, {poison}) VALUES"
                                          f" ($1, 'webhook', {values}) RETURNING id", campaign)
            assert tuple(await admin.fetchrow("SELECT attempt_count, claimed_by FROM content_posts WHERE id = $1",
                                              trusted)) == (2147483647, "evil")


async def test_scheduler_migrations_was_open_to_the_anon_key_and_004_closes_it(supabase: MakeDatabase) -> None:
    url = await supabase(through=BEFORE_004)
    statements = ["SELECT count(*) FROM scheduler_migrations", "DELETE FROM scheduler_migrations",
                  "UPDATE scheduler_migrations SET name = 'x'",
                  "INSERT INTO scheduler_migrations (name) VALUES ('999_evil.sql')", "TRUNCATE scheduler_migrations"]
    async with connected(url) as admin, connected(url) as app:
        names = [r["name"] for r in await admin.fetch("SELECT name FROM scheduler_migrations ORDER BY name")]
        await as_tenant(app, None, "anon")
        assert await app.execute("DELETE FROM scheduler_migrations") == f"DELETE {len(names)}", "the hole 004 closes"
        assert len(await pending(admin)) == len(available()), "the daemon would now refuse to start"
        await admin.executemany("INSERT INTO scheduler_migrations (name) VALUES ($1)", [(n,) for n in names])

        await migrate(admin)
        for role in ("anon", "authenticated"):
            await as_tenant(app, uuid.uuid4(), role)
            for sql in statements:
                assert isinstance(await refused(app, sql), asyncpg.InsufficientPrivilegeError), (role, sql)
        assert await admin.fetchval("SELECT relrowsecurity FROM pg_class WHERE relname = 'scheduler_migrations'")
        async with daemon_login(url) as daemon_url, connected(daemon_url) as daemon:
            assert await pending(daemon) == [], "the daemon's role reads every applied migration under RLS"
        assert await pending(admin) == []


# Everything 004 decides, in a form that does not depend on the order of grants.
CATALOG = [
    "SELECT c.relname, a.grantee::regrole::text, a.privilege_type, c.relrowsecurity"
    " FROM pg_class c, aclexplode(c.relacl) a WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1, 2, 3",
    "SELECT attrelid::regclass::text, attname, a.grantee::regrole::text, a.privilege_type"
    " FROM pg_attribute, aclexplode(attacl) a WHERE attrelid IN ('content_posts'::regclass,"
    " 'platform_connections'::regclass) ORDER BY 1, 2, 3, 4",
    "SELECT tablename, policyname, cmd, roles::text, qual, with_check FROM pg_policies ORDER BY 1, 2",
    "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
    " WHERE conrelid = 'content_posts'::regclass ORDER BY 1",
    "SELECT tgrelid::regclass::text, tgname, tgenabled, tgfoid::regproc::text, tgtype FROM pg_trigger"
    " WHERE NOT tgisinternal ORDER BY 1, 2",
    "SELECT proname, md5(prosrc), proconfig::text, provolatile, proacl::text FROM pg_proc"
    " WHERE proname LIKE 'scheduler_%' ORDER BY 1",
]


async def test_004_applied_again_changes_nothing(supabase: MakeDatabase) -> None:
    url = await supabase()
    async with connected(url) as admin:
        campaign, _ = await make_user(admin)
        await insert_row(admin, campaign)
        before = [await admin.fetch(sql) for sql in CATALOG], await admin.fetch("SELECT * FROM content_posts")
        for _ in range(2):
            await admin.execute(MIGRATION_004)
        assert ([await admin.fetch(sql) for sql in CATALOG], await admin.fetch("SELECT * FROM content_posts")) == before


# -- end to end under RLS ---------------------------------------------------------------------------


async def test_tenants_poison_is_refused_and_every_bystander_post_goes_out_once_never_early(
    supabase: MakeDatabase, watcher_on: Any, daemon_on: Any
) -> None:
    url = await supabase()
    users = {"alice": uuid.uuid4(), "bob": uuid.uuid4()}
    async with connected(url) as admin, connected(url) as app, Receiver() as rx, daemon_login(url) as daemon_url:
        watcher = await watcher_on(url)
        campaigns = {}
        for name, user in users.items():  # each signs up and connects a webhook, through the API
            await as_tenant(app, user)
            campaigns[name] = await app.fetchval(
                "INSERT INTO content_campaigns (user_id, name) VALUES ($1, $2) RETURNING id", user, name)
            await app.execute("INSERT INTO platform_connections (user_id, platform, access_token, metadata)"
                              " VALUES ($1, 'webhook', $2, $3::jsonb)", user, f"whsec-{name}-1",
                              json.dumps({"url": rx.url + "/hook"}))
        handle = await daemon_on(daemon_url)

        await as_tenant(app, users["alice"])
        now = "SELECT $1::uuid, 'webhook', 'scheduled', current_date, localtime(0), 'UTC'"
        poison = {
            "attempt_count = int max": f"INSERT INTO content_posts (campaign_id, platform, status, scheduled_date,"
                                       f" scheduled_time, timezone, attempt_count) {now}, 2147483647",
            "schedule_version = bigint max": f"INSERT INTO content_posts (campaign_id, platform, status,"
                                             f" scheduled_date, scheduled_time, timezone, schedule_version)"
                                             f" {now}, 9223372036854775807",
            "retry_at past 9999": f"INSERT INTO content_posts (campaign_id, platform, status, scheduled_date,"
                                  f" scheduled_time, timezone, retry_at) {now}, '9999-12-31T23:00:00-12:00'",
            "status published": "INSERT INTO content_posts (campaign_id, platform, status) VALUES ($1, 'webhook',"
                                " 'published')",
            "year 10000": "INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time)"
                          " VALUES ($1, 'webhook', 'scheduled', '10000-01-01', '10:00')",
            "BC date": "INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time)"
                       " VALUES ($1, 'webhook', 'scheduled', '0001-01-01 BC', '10:00')",
            "24:00": "INSERT INTO content_posts (campaign_id, platform, status, scheduled_date, scheduled_time)"
                     " VALUES ($1, 'webhook', 'scheduled', current_date, '24:00')",
            "Scheduled": "INSERT INTO content_posts (campaign_id, platform, status) VALUES ($1, 'webhook',"
                         " 'Scheduled')",
            "huge content": "INSERT INTO content_posts (campaign_id, platform, status, content) VALUES ($1, 'webhook',"
                            " 'scheduled', repeat('x', 100001))",
            "media file url": "INSERT INTO content_posts (campaign_id, platform, media) VALUES ($1, 'webhook',"
                              """ '[{"url": "file:///etc/passwd"}]')""",
            "unknown zone": "INSERT INTO content_posts (campaign_id, platform, timezone) VALUES ($1, 'webhook',"
                            " 'Mars/Olympus')",
        }
        for what, sql in poison.items():
            error = await refused(app, sql, campaigns["alice"])
            assert isinstance(error, (asyncpg.InsufficientPrivilegeError, asyncpg.CheckViolationError)), (what, error)
        for sql in ("DELETE FROM scheduler_migrations", "TRUNCATE content_posts"):
            assert isinstance(await refused(app, sql), asyncpg.InsufficientPrivilegeError), sql

        due = soon(1.0)
        posts = {}
        for name, user in users.items():  # everyone's ordinary posts, due at one instant
            await as_tenant(app, user)
            for n in range(3):
                posts[f"{name}-{n}"] = await insert_post(app, campaigns[name], due, content=f"{name}-{n}",
                                                         tz="Europe/Paris")
        await watcher.wait_all(list(posts.values()), "published", timeout=15)
        assert not handle.task.done(), "the daemon stopped"
        await handle.stop()
        assert await admin.fetchval("SELECT count(*) FROM content_posts") == len(posts), "a poison row got in"
    sent = sorted(a.json()["content"] for a in rx.arrivals)
    assert sent == sorted(posts), "each post exactly once"
    early = [(a.json()["content"], due.timestamp() - a.wall) for a in rx.arrivals if a.wall < due.timestamp() - 0.005]
    assert early == [], "published before its instant"


# -- what the database accepts, the daemon can read ------------------------------------------------

GOOD_ITEM = {"url": "https://example.com/a.png", "alt": "a cat", "mime": "image/png"}
TRICKY_MEDIA_VALUES: dict[str, list[Any]] = {
    "url": ["http://x", "https://", "http:/x", "ftp://x/a.png", "file:///etc/passwd", "javascript:alert(1)",
            "HTTPS://EXAMPLE.COM/A.PNG", "https://a b/c", "https://e.com/\u2028", "", "//e.com/a.png",
            "https://e.com/" + "a" * 2034, "https://e.com/" + "a" * 2035, None, 7, ["https://e.com/a.png"]],
    "storage_path": ["bucket/a.png", "", "b/\x01", "b/" + "p" * 1022, "b/" + "p" * 1023, 1, {"p": "x"}],
    "alt": ["a" * 2000, "a" * 2001, None, "", False, ["alt"]],
    "mime": ["image/svg+xml", "image/png; q=1", "image/png\r\nX: y", "png", "", "a/" + "b" * 126, "a/" + "b" * 127,
             None, 3.5],
    "width": [640, None, {"deep": [1, 2, {"x": "y" * 9000}]}],
}
# Values known to be tricky, per column; every one is tried on its own below, and hypothesis
# mixes them with generated ones.
TRICKY: dict[str, list[Any]] = {
    "status": ["draft", "scheduled", "publishing", "published", "Scheduled", "SCHEDULED", "scheduled ", "",
               "failed"],
    "scheduled_date": [None, "2000-01-01", "2999-12-31", "1999-12-31", "3000-01-01", "9999-12-31", "0001-01-01",
                       "10000-01-01", "294276-12-31", "0001-01-01 BC", "4713-01-01 BC", "infinity", "-infinity"],
    "scheduled_time": [None, "00:00:00", "23:59:59.999999", "24:00:00"],
    "timezone": ["UTC", "Etc/GMT+12", "Etc/GMT-14", "Pacific/Kiritimati", "America/Indiana/Indianapolis", "EST5EDT",
                 "GMT0", "europe/paris", "EUROPE/PARIS", "PST", "CEST", "XYZ+3", "<+05>-5", "localtime",
                 "posixrules", "Factory", "", " UTC", "UTC ", "Mars/Olympus", "../etc/passwd", "/etc/localtime",
                 "a" * 65],
    "content": [None, "", "x" * 99_999, "é" * 100_000, "👍" * 100_000, "x" * 100_001, "👍" * 100_001],
    "media": [json.dumps(m) for m in [
        [], {}, None, 1, "x", [1], [None], [[]], [{}], [GOOD_ITEM] * 20, [GOOD_ITEM] * 21,
        *([{**GOOD_ITEM, k: v}] for k, values in TRICKY_MEDIA_VALUES.items() for v in values),
        *([{k: v for k, v in GOOD_ITEM.items() if k != gone}] for gone in GOOD_ITEM),
        [{"storage_path": "bucket/a.png", "url": ""}], [GOOD_ITEM, {"url": "ftp://x/a.png"}],
    ]],
    "retry_at": [None, "2000-01-01 00:00:00+00", "2999-12-31 23:59:59+00", "1999-12-31 23:59:59+00",
                 "3000-01-01 00:00:00+00", "9999-12-31T23:00:00-12:00", "10000-01-01 00:00+00",
                 "0001-01-01 00:00+05", "infinity", "-infinity"],
}

text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8)
in_range = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2999, 12, 30), timezones=st.just(UTC))
good_media_item = st.fixed_dictionaries(
    {"url": st.sampled_from(["https://example.com/a.png", "http://cdn.example/v.mp4?x=1"])},
    optional={"alt": text | st.none(), "mime": st.sampled_from(["image/png", "video/mp4"]) | st.none(),
              "width": json_values}) | \
    st.fixed_dictionaries({"storage_path": st.just("bucket/a.png")}, optional={"alt": text, "url": st.just("")})
media_item = good_media_item | json_values | st.builds(
    lambda item, edit: {**item, edit[0]: edit[1]}, good_media_item,
    st.sampled_from([(k, v) for k, values in TRICKY_MEDIA_VALUES.items() for v in values]))


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``common`` about three times in four."""
    return st.one_of(common, common, common, rare)


# Values a frontend may write (all accepted), and others of any kind.
GOOD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "status": st.sampled_from(["draft", "scheduled", "publishing", "published"]),
    "scheduled_date": st.dates(dt.date(2000, 1, 1), dt.date(2999, 12, 31)).map(dt.date.isoformat),
    "scheduled_time": st.times().map(dt.time.isoformat),
    "timezone": st.sampled_from(sorted(available_timezones())),
    "content": st.none() | text | st.sampled_from(["👍" * 100_000]),
    "media": st.lists(good_media_item, max_size=20).map(json.dumps),
    "retry_at": st.none() | in_range.map(dt.datetime.isoformat),
}
OTHER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "status": text,
    "scheduled_date": st.dates().map(dt.date.isoformat),
    "scheduled_time": st.times().map(dt.time.isoformat),
    "timezone": text,
    "content": text,
    "media": st.lists(media_item, max_size=22).map(json.dumps) | json_values.map(json.dumps),
    "retry_at": st.datetimes(timezones=st.sampled_from(
        [UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(dt.timedelta(hours=-12))])).map(dt.datetime.isoformat),
}
RULES = {f"scheduler_posts_{c}_check" for c in COLUMN_TYPES}
# The claim's window (seconds ahead of now(), seconds of grace) wide enough to take any row
# 004 lets through (2000 .. 2999), whenever it is due.
CLAIM_ANY = (1e11, 1e11)


@st.composite
def post_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A row with a hostile column (or a few, or none): a tricky value or a generated one."""
    columns = st.sampled_from(sorted(GOOD_VALUES))
    hostile = draw(mostly(st.builds(lambda c: {c}, columns), st.sets(columns)))
    return {c: draw(mostly(st.sampled_from(TRICKY[c]), OTHER_VALUES[c]) if c in hostile else GOOD_VALUES[c])
            for c in GOOD_VALUES}


async def the_daemon_reads(db: asyncpg.Connection, post_id: uuid.UUID) -> str:
    """What the daemon does with an accepted row once it is scheduled: the boot load arms it
    (at the instant the database computed) or rejects it with a reason; an armed row is claimed and read
    by ``rows.post``. Anything else it raises is a crash."""
    await db.execute("UPDATE content_posts SET status = 'scheduled' WHERE id = $1 AND status <> 'scheduled'", post_id)
    [record] = [r for r in await db.fetch(q("load_scheduled")) if r["id"] == post_id]
    loaded = rows.loaded_row(record)
    if loaded.due is None:
        assert loaded.problem, record
        return "rejected"  # no date or time: the load says why
    [claimed] = await db.fetch(q("claim"), [post_id], [loaded.version], "hypothesis", *CLAIM_ANY)
    assert claimed["verdict"] == "due", dict(claimed)
    rows.post(claimed, 100_000)  # content and media passed the database: the daemon takes them as they are
    return "armed"


async def try_row(db: asyncpg.Connection, campaign: uuid.UUID, values: dict[str, Any]) -> str:
    """Insert ``values`` and follow the row through the daemon; all of it rolled back."""
    transaction = db.transaction()
    await transaction.start()
    try:
        post_id = await insert_row(db, campaign, **values)
    except asyncpg.CheckViolationError as error:
        assert error.constraint_name in RULES and error.message and error.hint, error
        return f"refused by {error.constraint_name}"
    else:
        return await the_daemon_reads(db, post_id)
    finally:
        await transaction.rollback()


@pytest.mark.parametrize("column", sorted(TRICKY))
async def test_every_tricky_value_on_its_own_is_refused_or_armed_or_rejected_with_a_reason(
    db: asyncpg.Connection, column: str
) -> None:
    await init_connection(db)
    campaign, _ = await make_user(db)
    outcomes = {}
    for value in TRICKY[column]:
        outcomes[value if not isinstance(value, str) or len(value) < 80 else f"{value[:20]}…({len(value)})"] = \
            await try_row(db, campaign, {**GOOD, column: value})
    assert "armed" in outcomes.values() and any(o.startswith("refused") for o in outcomes.values()), outcomes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=post_rows())
async def test_whatever_the_database_accepts_the_daemon_arms_or_rejects_with_a_reason(
    db: asyncpg.Connection, values: dict[str, Any]
) -> None:
    await init_connection(db)  # the daemon's JSON codecs
    campaign = await db.fetchval("SELECT id FROM content_campaigns LIMIT 1") or (await make_user(db))[0]
    event(await try_row(db, campaign, values))


@pytest.fixture
async def known_zones(db: asyncpg.Connection) -> list[str]:
    """The zone names both this PostgreSQL and Python's zoneinfo know."""
    names = {r["name"] for r in await db.fetch("SELECT name FROM pg_timezone_names")}
    return sorted(names & available_timezones() - {"localtime", "posixrules", "Factory"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_every_documented_good_row_is_accepted_and_armed(
    db: asyncpg.Connection, known_zones: list[str], data: st.DataObject
) -> None:
    await init_connection(db)
    campaign = await db.fetchval("SELECT id FROM content_campaigns LIMIT 1") or (await make_user(db))[0]
    known = known_zones
    values = {c: data.draw(st.sampled_from(known) if c == "timezone" else strategy, label=c)
              for c, strategy in GOOD_VALUES.items()}
    assert await try_row(db, campaign, values) == "armed", values


# -- migrations/006: thread, first_comment, platform_options ---------------------------------

ITEM_HINTS = {
    "thread": "thread is a JSON array of the replies that follow the post",
    "first_comment": "Each platform's own limit for a comment",
    "platform_options": "platform_options is one object of the post's platform's options",
}
ITEM_TYPES = {"thread": "jsonb", "first_comment": "text", "platform_options": "jsonb"}
ITEM_REFUSALS = [
    pytest.param("thread", '{"content": "2/2"}', "thread must be a JSON array of {content, media} items",
                 id="thread-not-an-array"),
    pytest.param("thread", '["2/2"]', "thread[0] must be an object with content and/or media", id="thread-item-text"),
    pytest.param("thread", '[{"content": "ok"}, {"content": 7}]', "thread[1].content must be a string",
                 id="thread-content-a-number"),
    pytest.param("thread", '[{"content": "ok"}, {}]', "thread[1] is empty: an item needs content or media",
                 id="thread-item-empty"),
    pytest.param("thread", '[{"content": "", "media": []}]', "thread[0] is empty: an item needs content or media",
                 id="thread-item-blank"),
    pytest.param("thread", '[{"media": [{"url": "javascript:alert(1)"}]}]',
                 "thread[0].media[0].url must be an http:// or https:// URL", id="thread-media-url"),
    pytest.param("thread", '[{"content": "a", "media": {"url": "https://example.com/a.png"}}]',
                 "thread[0].media must be a JSON array of {url | storage_path, alt, mime}", id="thread-media-object"),
    pytest.param("thread", json.dumps([{"content": "x" * 100_001}]),
                 "thread[0].content is 100001 characters; the most an item may have is 100000",
                 id="thread-item-too-long"),
    pytest.param("thread", json.dumps([{"content": f"{n}"} for n in range(101)]),
                 "thread has 101 items; a post may have at most 100", id="thread-101-items"),
    pytest.param("thread", json.dumps([{"content": "x" * 99_000} for _ in range(11)]),
                 "thread is longer than 1000000 characters", id="thread-too-long-in-all"),
    pytest.param("first_comment", "c" * 10_001, "first_comment is 10001 characters; the most it may have is 10000",
                 id="first-comment-too-long"),
    pytest.param("platform_options", '["notify"]', "platform_options must be a JSON object", id="options-array"),
    pytest.param("platform_options", '"notify"', "platform_options must be a JSON object", id="options-string"),
    pytest.param("platform_options", json.dumps({"k": "v" * 10_000}),
                 "platform_options is longer than 10000 characters", id="options-too-long"),
]


@pytest.mark.parametrize(("column", "value", "message"), ITEM_REFUSALS)
async def test_each_006_rule_refuses_its_input_on_insert_and_update_with_what_the_frontend_sees(
    db: asyncpg.Connection, column: str, value: str, message: str
) -> None:
    campaign, _ = await make_user(db)
    kept = await insert_row(db, campaign)
    cast = ITEM_TYPES[column]
    insert = f"INSERT INTO content_posts (campaign_id, platform, {column}) VALUES ($1, 'webhook', $2::text::{cast})"
    update = f"UPDATE content_posts SET {column} = $2::text::{cast} WHERE id = $1"
    for error in (await refused(db, insert, campaign, value), await refused(db, update, kept, value)):
        assert isinstance(error, asyncpg.CheckViolationError), error
        assert (error.constraint_name, error.column_name, error.table_name) == (
            f"scheduler_posts_{column}_check", column, "content_posts")
        assert error.message == message and ITEM_HINTS[column] in error.hint and error.detail.startswith("post ")
    assert await db.fetchval(f"SELECT {column} IS NULL OR {column}::text IN ('[]', '{{}}') FROM content_posts"
                             " WHERE id = $1", kept), "the refused update landed"


async def test_what_006_accepts_the_daemon_reads(db: asyncpg.Connection) -> None:
    """Threads, comments and options a frontend writes (and NULL, an existing row's value)
    are armed and read by the claim into the post's items."""
    await init_connection(db)
    campaign, _ = await make_user(db)
    thread = [{"content": "2/3", "media": None, "draft_id": 7},
              {"media": [{"url": "https://example.com/a.png", "alt": "a"}]},
              {"content": "x" * 100_000}]
    values = [(thread, "first!", {"notify": True, "nested": {"a": [1, 2]}}), (None, None, None), ([], "", {})]
    for thread_value, comment, options in values:
        post_id = await db.fetchval(
            "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,"
            " thread, first_comment, platform_options) VALUES ($1, 'webhook', '1/3', 'scheduled', '2030-01-01',"
            " '10:00', $2, $3, $4) RETURNING id", campaign, thread_value, comment, options)
        [claimed] = await db.fetch(q("claim"), [post_id], [0], "hypothesis", *CLAIM_ANY)
        post = rows.post(claimed, 100_000)
        if thread_value:
            assert [i.content for i in post.items] == ["1/3", "2/3", "", "x" * 100_000]
            assert post.items[2].media[0].alt == "a" and post.first_comment == "first!"
            assert post.options == {"notify": True, "nested": {"a": [1, 2]}}
        else:
            assert (post.thread, post.first_comment, post.options) == ((), None, {})


async def test_a_reschedule_keeps_the_items_a_partly_published_thread_has_out(db: asyncpg.Connection) -> None:
    """002 empties publish_state when the user reschedules; 006 keeps ``items`` (the
    thread's published ids) through it, unless the post was published, or is aimed at
    another platform or connection now."""
    campaign, connection = await make_user(db)
    out = '{"items": [{"id": "p1", "url": "u1"}], "prepared": {"for": "f", "value": {}}, "rkey": "k"}'

    async def partial(status: str = "draft") -> uuid.UUID:
        post_id = await insert_row(db, campaign, status=status)
        await db.execute("UPDATE content_posts SET publish_state = $2::jsonb WHERE id = $1", post_id, out)
        return post_id

    async def state_after(post_id: uuid.UUID, change: str) -> Any:
        await db.execute(f"UPDATE content_posts SET {change} WHERE id = $1", post_id)
        return json.loads(await db.fetchval("SELECT publish_state::text FROM content_posts WHERE id = $1", post_id))

    kept = {"items": [{"id": "p1", "url": "u1"}]}
    assert await state_after(await partial(), "status = 'scheduled'") == kept
    assert await state_after(await partial(), "scheduled_date = '2031-01-01'") == kept
    assert await state_after(await partial(), "content = 'edited'") == json.loads(out)  # no reschedule: untouched
    assert await state_after(await partial("published"), "status = 'scheduled'") == {}
    assert await state_after(await partial(), "status = 'scheduled', platform = 'x'") == {}
    assert await state_after(await partial(), f"status = 'scheduled', connection_id = '{connection}'") == {}
