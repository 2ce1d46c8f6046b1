"""The operator commands against a real database, run the way an operator runs them:
``scheduler_daemon.cli.main([...])`` in-process (in a thread: main owns its event loop)
with DATABASE_URL in the environment, and once through the installed entry point."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from scheduler_daemon.cli import doctor, main
from support.helpers import Watcher, input_checks_off, insert_post, make_user, row, soon

UTC = dt.timezone.utc
TOKEN = "tok-very-secret-value-123"
REFRESH = "refresh-very-secret-456"


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """main() configures logging onto the captured stdout: put the old config back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def cli(dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)

    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        saved = structlog.get_config()
        try:
            code = await asyncio.to_thread(main, list(argv))
        finally:
            structlog.configure(**saved)  # main() logs onto this test's captured stdout
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def run_json(cli: Any, *argv: str) -> tuple[int, Any]:
    code, out, _err = await cli(*argv, "--json")
    return code, json.loads(out)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# -- help and usage -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["status", "doctor", "schedule", "cancel", "retry", "connections", "install-service"]
)
def test_every_command_has_help_with_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"scheduler-daemon {command}" in out and "Exit status: 0 ok, 1 problem" in out


def test_bad_post_id_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["cancel", "not-a-uuid"])
    assert exit_info.value.code == 2
    assert "is not a post id" in capsys.readouterr().err


# -- status -------------------------------------------------------------------------------


async def test_status_on_an_empty_database_is_ok(cli: Any) -> None:
    code, doc = await run_json(cli, "status")
    assert code == 0
    assert doc["counts"] == {} and doc["next_due"] == [] and doc["problems"] == 0


async def test_status_reports_counts_next_due_overdue_failures_and_stuck(db: asyncpg.Connection, cli: Any) -> None:
    campaign, _ = await make_user(db, "log")
    now = dt.datetime.now(UTC)
    later = [await insert_post(db, campaign, now + dt.timedelta(hours=h), content=f"in {h} h") for h in (3, 1, 2)]
    paris = await insert_post(db, campaign, now + dt.timedelta(minutes=30), tz="Europe/Paris")
    overdue = await insert_post(db, campaign, now - dt.timedelta(minutes=10), content="overdue")
    bad_zone = await insert_post(db, campaign, now + dt.timedelta(hours=5))
    async with input_checks_off(db):  # a row from before migrations/004, which refuses it now
        await db.execute("UPDATE content_posts SET timezone = 'Mars/Olympus' WHERE id = $1", bad_zone)
    await insert_post(db, campaign, None, status="draft")
    stuck = await insert_post(db, campaign, None, status="draft")
    await db.execute(
        "UPDATE content_posts SET status = 'publishing', claimed_by = 'vm1:42', claimed_at = now() - interval '1 hour'"
        " WHERE id = $1", stuck,
    )
    fresh = await insert_post(db, campaign, None, status="draft")
    await db.execute(
        "UPDATE content_posts SET status = 'publishing', claimed_by = 'vm1:42', claimed_at = now() WHERE id = $1", fresh
    )
    await db.execute(
        "INSERT INTO publish_attempts (post_id, attempt, platform, instance, started_at, finished_at, outcome,"
        " error_message) VALUES ($1, 1, 'log', 'vm1:42', now() - interval '2 min', now() - interval '1 min',"
        " 'failed', 'the platform said no'), ($1, 1, 'log', 'vm1:42', now() - interval '30 h',"
        " now() - interval '30 h', 'failed', 'too old to list'), ($1, 2, 'log', 'vm1:42', now(), now(),"
        " 'published', NULL)",
        overdue,
    )

    code, doc = await run_json(cli, "status", "--limit", "3")

    assert code == 1, "overdue and stuck posts are problems"
    assert doc["counts"] == {"draft": 1, "publishing": 2, "scheduled": 6}
    assert [i["id"] for i in doc["next_due"]] == [str(paris), str(later[1]), str(later[2])]
    assert 1790 < doc["next_due"][0]["due_in_seconds"] <= 1800
    assert [i["id"] for i in doc["overdue"]] == [str(overdue)]
    assert [i["id"] for i in doc["unschedulable"]] == [str(bad_zone)]
    assert "unknown timezone" in doc["unschedulable"][0]["error"]
    assert [s["id"] for s in doc["stuck"]] == [str(stuck)], "a claim younger than --stuck-after is not stuck"
    assert doc["stuck"][0]["claimed_by"] == "vm1:42" and doc["stuck"][0]["held_seconds"] >= 3599
    assert [(f["post_id"], f["error_message"]) for f in doc["failures"]["recent"]] == [
        (str(overdue), "the platform said no")
    ]
    assert doc["failures"]["counts"] == [{"platform": "log", "outcome": "failed", "attempts": 1}]
    assert doc["problems"] == 3

    code, out, _ = await cli("status")
    assert code == 1
    assert "OVERDUE: 1" in out and str(overdue) in out and "STUCK: 1" in out and "UNSCHEDULABLE: 1" in out
    assert "Failed attempts in the last 24 h: 1 (log/failed 1)" in out and "the platform said no" in out


async def test_status_without_migrations_says_so(
    databases: Any, cli: Any, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM scheduler_migrations WHERE name = '002_notify_triggers.sql'")
    finally:
        await conn.close()
    code, _out, err = await cli("status")
    assert code == 2 and "lacks migrations 002_notify_triggers.sql" in err and "scheduler-daemon migrate" in err


async def test_unreachable_database_exits_1(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:pw-xyz-123@127.0.0.1:1/none")
    code, out, err = await cli("status")
    assert code == 1 and "database error" in err and "pw-xyz-123" not in out + err


# -- doctor -------------------------------------------------------------------------------


async def test_doctor_passes_on_a_migrated_database(cli: Any) -> None:
    code, doc = await run_json(cli, "doctor")
    assert code == 0 and doc["ok"] is True
    checks = {c["name"]: c for c in doc["checks"]}
    assert {"connection string", "connect", "server", "session", "tables", "triggers", "migrations",
            "listen/notify", "notify queue", "clock", "tokens"} <= set(checks)
    assert all(c["status"] == "ok" for c in checks.values()), checks
    assert checks["listen/notify"]["data"]["seconds"] < 5
    assert abs(checks["clock"]["data"]["skew_seconds"]) < 0.5

    code, out, _ = await cli("doctor")
    assert code == 0
    assert "ok    listen/notify: NOTIFY came back in" in out and "0 failed" in out


async def test_doctor_and_run_refuse_an_api_version_past_its_sunset(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULER_LINKEDIN_VERSION", "202510")  # sunset 2026-10-15
    code, doc = await run_json(cli, "doctor")
    versions = next(c for c in doc["checks"] if c["name"] == "api versions")
    assert code == 1 and versions["status"] == "fail" and "SCHEDULER_LINKEDIN_VERSION=202510" in versions["detail"]
    code, out, err = await cli("run")
    assert code == 2 and "SCHEDULER_LINKEDIN_VERSION=202510" in out + err


async def test_doctor_fails_on_a_missing_trigger_and_pending_migration(db: asyncpg.Connection, cli: Any) -> None:
    await db.execute("DROP TRIGGER scheduler_posts_notify ON content_posts")
    await db.execute("ALTER TABLE content_posts DISABLE TRIGGER scheduler_posts_before_update")
    await db.execute("DELETE FROM scheduler_migrations WHERE name = '002_notify_triggers.sql'")
    code, doc = await run_json(cli, "doctor")
    assert code == 1 and doc["ok"] is False
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["triggers"]["status"] == "fail"
    assert checks["triggers"]["data"] == {
        "missing": ["scheduler_posts_notify"], "disabled": ["scheduler_posts_before_update"], "wrong_function": []
    }
    assert checks["migrations"]["status"] == "fail" and checks["migrations"]["data"]["pending"] == [
        "002_notify_triggers.sql"
    ]
    assert checks["listen/notify"]["status"] == "ok", "the round trip needs no trigger"

    code, out, _ = await cli("doctor")
    assert (
        code == 1 and "fail  triggers: missing: scheduler_posts_notify; disabled: scheduler_posts_before_update" in out
    )


async def test_doctor_lists_tokens_expiring_soon_without_printing_them(db: asyncpg.Connection, cli: Any) -> None:
    _, soon_conn = await make_user(db, "x", access_token=TOKEN, account_id="acct-soon")
    _, far_conn = await make_user(db, "x", access_token=TOKEN, account_id="acct-far")
    _, rejected = await make_user(db, "facebook", access_token=TOKEN, account_id="acct-rejected")
    await db.execute("UPDATE platform_connections SET token_expires_at = now() + interval '2 days',"
                     " refresh_token = $2 WHERE id = $1", soon_conn, REFRESH)
    await db.execute(
        "UPDATE platform_connections SET token_expires_at = now() + interval '30 days' WHERE id = $1", far_conn
    )
    await db.execute("UPDATE platform_connections SET needs_reconnect = true WHERE id = $1", rejected)

    code, out, _ = await cli("doctor")
    assert code == 0, "expiring tokens are a warning"
    assert "warn  tokens: 2 connection(s) need attention" in out
    assert f"x {soon_conn} account acct-soon: expires in 47 h" in out
    assert "(has a refresh token)" in out
    assert f"facebook {rejected} account acct-rejected: rejected by the platform" in out
    assert str(far_conn) not in out
    assert TOKEN not in out and REFRESH not in out

    code, doc = await run_json(cli, "doctor", "--expiry-days", "40")
    tokens = next(c for c in doc["checks"] if c["name"] == "tokens")
    assert {c["id"] for c in tokens["data"]["connections"]} == {str(soon_conn), str(far_conn), str(rejected)}
    assert TOKEN not in json.dumps(doc)


async def test_doctor_flags_the_transaction_pooler_port(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres.ref:pw-secret-99@127.0.0.1:6543/postgres")
    code, out, err = await cli("doctor", "--timeout", "2")
    assert code == 1
    assert "fail  connection string: port 6543 is Supabase's transaction pooler" in out
    assert "session pooler (<region>.pooler.supabase.com:5432)" in out
    assert "fail  connect:" in out
    assert "pw-secret-99" not in out + err


@pytest.mark.parametrize(
    ("dsn", "host", "ports", "status"),
    [
        ("postgresql://u:p@db.abc.supabase.co:5432/postgres", "db.abc.supabase.co", [5432], "ok"),
        (
            "postgresql://u.abc:p@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
            "aws-0-eu-west-1.pooler.supabase.com",
            [6543],
            "fail",
        ),
        (
            "postgresql://u.abc:p@aws-0-eu-west-1.pooler.supabase.com:5432/postgres",
            "aws-0-eu-west-1.pooler.supabase.com",
            [5432],
            "ok",
        ),
        ("postgresql://u@h1:5432,h2:6543/db", "h1,h2", [5432, 6543], "fail"),
        ("postgresql://u@[::1]/db?port=6543", "::1", [6543], "fail"),
        ("postgresql:///db?host=/run/postgresql", "/run/postgresql", [5432], "ok"),
    ],
)
def test_pooler_detection_from_the_url(dsn: str, host: str, ports: list[int], status: str) -> None:
    assert doctor.dsn_endpoint(dsn) == (host, ports)
    assert doctor.pooler_check(dsn).status == status


def test_pooler_detection_from_behaviour() -> None:
    assert doctor.pooler_behaviour([7, 7, 7]).status == "ok"
    check = doctor.pooler_behaviour([7, 9, 7])
    assert check.status == "fail" and "transaction-mode pooler" in check.detail


# -- schedule, cancel, retry ----------------------------------------------------------------


async def listen(db: asyncpg.Connection) -> asyncio.Queue[dict[str, Any]]:
    """The daemon's channel, as the daemon hears it."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await db.add_listener("scheduler_daemon", lambda *a: queue.put_nowait(json.loads(a[3])))
    return queue


async def test_schedule_sets_the_time_and_the_trigger_notifies(db: asyncpg.Connection, cli: Any) -> None:
    campaign, _ = await make_user(db, "log")
    post = await insert_post(db, campaign, None, status="draft", tz="Europe/Paris")
    heard = await listen(db)
    when = (dt.datetime.now(UTC) + dt.timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)

    code, doc = await run_json(cli, "schedule", str(post), "--at", when.strftime("%Y-%m-%dT%H:%M"))

    assert code == 0
    r = await row(db, post)
    assert (r["status"], r["scheduled_date"], r["scheduled_time"], r["timezone"]) == (
        "scheduled", when.date(), dt.time(9, 30), "Europe/Paris"
    ), "a time without offset is wall-clock time in the post's zone"
    due = when.replace(tzinfo=None).replace(tzinfo=__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert utc(doc["due"]) == due
    async with asyncio.timeout(5):
        note = await heard.get()
    assert (note["op"], note["id"], note["status"], note["tz"]) == ("U", str(post), "scheduled", "Europe/Paris")


async def test_schedule_converts_an_offset_to_the_given_zone(db: asyncpg.Connection, cli: Any) -> None:
    campaign, _ = await make_user(db, "log")
    post = await insert_post(db, campaign, None, status="draft")
    code, out, _ = await cli("schedule", str(post), "--at", "2099-07-01T07:00:00Z", "--timezone", "America/New_York")
    assert code == 0 and "is due 2099-07-01T07:00:00+00:00" in out
    r = await row(db, post)
    assert (r["scheduled_date"], r["scheduled_time"], r["timezone"]) == (
        dt.date(2099, 7, 1),
        dt.time(3, 0),
        "America/New_York",
    )


async def test_schedule_refuses_what_it_cannot_store(db: asyncpg.Connection, cli: Any) -> None:
    campaign, _ = await make_user(db, "log")
    draft = await insert_post(db, campaign, None, status="draft")
    published = await insert_post(db, campaign, None, status="draft")
    await db.execute("UPDATE content_posts SET status = 'published', published_at = now() WHERE id = $1", published)

    code, _, err = await cli("schedule", str(draft), "--at", "2099-01-01T09:00", "--timezone", "Europe/Atlantis")
    assert code == 2 and "unknown timezone 'Europe/Atlantis'" in err
    code, _, err = await cli("schedule", str(draft), "--at", "next tuesday")
    assert code == 2 and "is not an ISO 8601 date-time" in err
    code, _, err = await cli("schedule", str(draft), "--at", "2001-01-01T09:00")
    assert code == 2 and "is in the past" in err
    # 01:30 happens twice in New York on 2099-11-01; its second occurrence cannot be stored
    code, _, err = await cli("schedule", str(draft), "--at", "2099-11-01T06:30:00Z", "--timezone", "America/New_York")
    assert code == 2 and "daylight-saving" in err
    assert (await row(db, draft))["status"] == "draft", "nothing changed"

    code, _, err = await cli("schedule", str(published), "--at", "now")
    assert code == 1 and "already published" in err
    code, _, err = await cli("schedule", str(uuid.uuid4()), "--at", "now")
    assert code == 1 and "no post" in err


async def test_scheduled_post_is_published_by_a_running_daemon(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any, cli: Any
) -> None:
    campaign, _ = await make_user(db, "log")
    post = await insert_post(db, campaign, None, status="draft", platform="log")
    await start_daemon()
    due = soon(0.5)
    code, _, _ = await cli("schedule", str(post), "--at", due.isoformat(), "--timezone", "UTC")
    assert code == 0
    await watcher.wait(post, "published")
    r = await row(db, post)
    assert r["published_at"] >= due - dt.timedelta(milliseconds=5)


async def test_cancel(db: asyncpg.Connection, cli: Any) -> None:
    campaign, _ = await make_user(db, "log")
    scheduled = await insert_post(db, campaign, soon(3600))
    heard = await listen(db)
    code, doc = await run_json(cli, "cancel", str(scheduled))
    assert code == 0 and doc["action"] == "cancelled" and doc["post"]["status"] == "draft"
    async with asyncio.timeout(5):
        note = await heard.get()
    assert (note["id"], note["status"]) == (str(scheduled), "draft"), "the daemon hears it and disarms"

    code, out, _ = await cli("cancel", str(scheduled))
    assert code == 0 and "already a draft" in out
    await db.execute("UPDATE content_posts SET status = 'publishing', claimed_by = 'vm1:1' WHERE id = $1", scheduled)
    code, _, err = await cli("cancel", str(scheduled))
    assert code == 1 and "being published right now (claimed by vm1:1)" in err
    code, _, err = await cli("cancel", str(uuid.uuid4()))
    assert code == 1 and "no post" in err


async def test_retry_reschedules_a_failed_draft(db: asyncpg.Connection, cli: Any) -> None:
    campaign, _ = await make_user(db, "log")
    failed = await insert_post(db, campaign, dt.datetime(2020, 1, 1, tzinfo=UTC), status="draft", tz="Asia/Tokyo")
    await db.execute("UPDATE content_posts SET error_message = 'missed: was due ...', attempt_count = 3,"
                     " publish_state = '{\"container\": \"c1\"}' WHERE id = $1", failed)
    plain = await insert_post(db, campaign, None, status="draft")

    before = dt.datetime.now(UTC)
    code, doc = await run_json(cli, "retry", str(failed))
    assert code == 0 and doc["previous_error"] == "missed: was due ..."
    r = await row(db, failed)
    assert r["status"] == "scheduled" and r["timezone"] == "Asia/Tokyo"
    assert (r["error_message"], r["attempt_count"], r["publish_state"]) == (None, 0, "{}"), "a fresh series"
    assert before - dt.timedelta(seconds=1) <= utc(doc["due"]) <= dt.datetime.now(UTC) + dt.timedelta(seconds=1)

    code, _, err = await cli("retry", str(failed))
    assert code == 1 and "is 'scheduled'" in err
    code, _, err = await cli("retry", str(plain))
    assert code == 1 and "a draft without an error" in err

    async with input_checks_off(db):  # a row from before migrations/004, which refuses it now
        await db.execute(
            "UPDATE content_posts SET status = 'draft', error_message = 'unknown timezone', timezone = 'Bad/Zone'"
            " WHERE id = $1",
            failed,
        )
    code, _, err = await cli("retry", str(failed), "--at", "2099-03-01T10:00")
    assert code == 2 and "pass --timezone" in err
    code, out, _ = await cli("retry", str(failed), "--at", "2099-03-01T10:00", "--timezone", "UTC")
    assert code == 0 and "previous error: unknown timezone" in out
    r = await row(db, failed)
    assert (r["status"], r["scheduled_date"], r["scheduled_time"], r["timezone"]) == (
        "scheduled", dt.date(2099, 3, 1), dt.time(10, 0), "UTC"
    )


# -- connections --------------------------------------------------------------------------


async def test_connections_list_never_prints_tokens(db: asyncpg.Connection, cli: Any) -> None:
    _, hook = await make_user(db, "webhook", access_token=TOKEN, metadata={"url": "https://example.test/h"})
    _, x = await make_user(db, "x", access_token=TOKEN, account_id="12345")
    await db.execute("UPDATE platform_connections SET refresh_token = $2, token_expires_at = '2099-01-01Z'"
                     " WHERE id = $1", x, REFRESH)

    code, out, _ = await cli("connections")
    assert code == 0
    assert str(hook) in out and str(x) in out and "account 12345" in out and "2099-01-01T00:00:00+00:00" in out
    code, doc = await run_json(cli, "connections", "--platform", "x")
    assert code == 0 and [c["id"] for c in doc["connections"]] == [str(x)]
    c = doc["connections"][0]
    assert (c["has_access_token"], c["has_refresh_token"], c["needs_reconnect"]) == (True, True, False)
    assert "access_token" not in c and "refresh_token" not in c
    _, all_out, _ = await cli("connections", "--test", "--json")
    for text in (out, json.dumps(doc), all_out):
        assert TOKEN not in text and REFRESH not in text


async def test_connections_test_finds_broken_connections(db: asyncpg.Connection, cli: Any) -> None:
    _, good = await make_user(db, "webhook", access_token=None, metadata={"url": "https://example.test/h"})
    _, rejected = await make_user(db, "facebook", access_token=TOKEN)
    await db.execute("UPDATE platform_connections SET needs_reconnect = true WHERE id = $1", rejected)
    _, tokenless = await make_user(db, "telegram", access_token=None)
    _, expired = await make_user(db, "linkedin", access_token=TOKEN)
    await db.execute(
        "UPDATE platform_connections SET token_expires_at = now() - interval '1 day' WHERE id = $1", expired
    )
    _, refreshable = await make_user(db, "x", access_token=TOKEN)
    await db.execute("UPDATE platform_connections SET token_expires_at = now() - interval '1 hour', refresh_token = $2"
                     " WHERE id = $1", refreshable, REFRESH)
    _, expiring = await make_user(db, "threads", access_token=TOKEN)
    await db.execute(
        "UPDATE platform_connections SET token_expires_at = now() + interval '3 days' WHERE id = $1", expiring
    )
    _, unknown = await make_user(db, "myspace", access_token=TOKEN)

    code, doc = await run_json(cli, "connections", "--test")
    assert code == 1
    by_id = {c["id"]: c for c in doc["connections"]}
    assert by_id[str(good)]["check"] == "ok"
    assert by_id[str(rejected)]["check"] == "fail" and "reconnect" in by_id[str(rejected)]["problems"][0]
    assert by_id[str(tokenless)]["problems"] == ["no access token"]
    assert by_id[str(expired)]["check"] == "fail" and "no refresh token" in by_id[str(expired)]["problems"][0]
    assert by_id[str(refreshable)]["check"] == "warn"
    assert by_id[str(expiring)]["check"] == "warn" and "expires in" in by_id[str(expiring)]["problems"][0]
    assert by_id[str(unknown)]["check"] == "fail" and "unknown platform 'myspace'" in by_id[str(unknown)]["problems"][0]
    assert doc["failed"] == 4

    code, out, _ = await cli("connections", "--test", "--platform", "webhook")
    assert code == 0 and out.startswith("ok  ") and "1 connection(s), 0 failed" in out


# -- install-service ----------------------------------------------------------------------


async def test_install_service_writes_the_unit_and_env_and_keeps_edits(tmp_path: Path, cli: Any) -> None:
    code, out, err = await cli("install-service", "--prefix", str(tmp_path))
    assert code == 0, err
    unit = tmp_path / "etc/systemd/system/scheduler-daemon.service"
    env = tmp_path / "etc/scheduler-daemon/env"
    entry = Path(sys.executable).with_name("scheduler-daemon")
    text = unit.read_text()
    assert f"\nExecStart={entry} run\n" in text and "ExecStart=/opt/" not in text
    assert "LoadCredential=database_url:/etc/scheduler-daemon/database_url" in text
    assert stat.S_IMODE(env.stat().st_mode) == 0o600 and stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert env.read_text() == (Path(__file__).parents[2] / "systemd/scheduler-daemon.env.example").read_text()
    assert "systemctl daemon-reload" in out and "systemctl enable --now scheduler-daemon" in out
    assert "journalctl -u scheduler-daemon -f" in out

    env.write_text("SCHEDULER_LOG_LEVEL=debug\n")
    code, out, _ = await cli("install-service", "--prefix", str(tmp_path))
    assert code == 0 and "unchanged" in out and "kept" in out
    assert env.read_text() == "SCHEDULER_LOG_LEVEL=debug\n", "never overwritten without --force"

    unit.write_text("# edited\n")
    code, out, _ = await cli("install-service", "--prefix", str(tmp_path))
    assert code == 1 and unit.read_text() == "# edited\n", "a different unit is kept, and that is reported"

    code, out, _ = await cli("install-service", "--prefix", str(tmp_path), "--force")
    assert code == 0 and unit.read_text() == text and env.read_text() != "SCHEDULER_LOG_LEVEL=debug\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


async def test_install_service_other_env_dir(tmp_path: Path, cli: Any) -> None:
    code, _, _ = await cli("install-service", "--prefix", str(tmp_path), "--unit-dir", "/lib/systemd/system",
                           "--env-dir", "/srv/sd")
    assert code == 0
    text = (tmp_path / "lib/systemd/system/scheduler-daemon.service").read_text()
    assert "EnvironmentFile=-/srv/sd/env" in text and "LoadCredential=database_url:/srv/sd/database_url" in text
    assert "/etc/scheduler-daemon" not in text
    assert (tmp_path / "srv/sd/env").exists()
    code, _, err = await cli("install-service", "--prefix", str(tmp_path), "--env-dir", "relative")
    assert code == 2 and "absolute path" in err


async def test_install_service_unit_verifies(tmp_path: Path, cli: Any) -> None:
    import shutil
    import subprocess

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    code, _, _ = await cli("install-service", "--prefix", str(tmp_path))
    assert code == 0
    result = await asyncio.to_thread(
        subprocess.run,
        [analyze, "verify", "--man=no", str(tmp_path / "etc/systemd/system/scheduler-daemon.service")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: nothing to refuse")
def test_install_service_without_permission_is_a_clear_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["install-service", "--prefix", str(locked)]) == 1
    assert "permission denied (run as root" in capsys.readouterr().err


# -- through the installed entry point ------------------------------------------------------


async def test_entry_point_status_json(dsn: str, db: asyncpg.Connection) -> None:
    campaign, _ = await make_user(db, "log")
    await insert_post(db, campaign, soon(3600))
    exe = Path(sys.executable).with_name("scheduler-daemon")
    env = {**os.environ, "DATABASE_URL": dsn}
    proc = await asyncio.create_subprocess_exec(
        str(exe), "status", "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    assert doc["counts"] == {"scheduled": 1} and len(doc["next_due"]) == 1
