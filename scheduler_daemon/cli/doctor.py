"""``doctor``: check everything the daemon relies on, one function per check (``CHECKS``).

Read-only. Each check returns a ``Check`` (ok, warn or fail), printed as it comes; the
exit status is 1 when any fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..clock import format_delay
from ..config import Settings
from ..db.admin import Admin, ConnectionState, RuleBreach, ServerInfo, open_admin
from ..db.errors import DB_ERRORS
from ..platforms import versions
from ..redact import SECRETS
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Command,
    expiry_days_flag,
    json_flag,
    note_embedded,
    positive,
    print_json,
    resolve_dsn,
)

# Triggers of migrations/002: without them the daemon never hears of new or changed posts.
REQUIRED_TRIGGERS = {
    "scheduler_posts_before_update": "scheduler_posts_before_update",
    "scheduler_posts_notify": "scheduler_posts_notify",
    "scheduler_posts_notify_truncate": "scheduler_posts_notify_truncate",
}
TRANSACTION_POOLER_PORT = 6543
MIN_SERVER_VERSION = 130000
CLOCK_SKEW_WARN_SECONDS = 0.5  # the daemon logs a warning past this too
NOTIFY_QUEUE_WARN = 0.5
INPUT_RULES_MIGRATION = "004_tenant_input.sql"


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Probe:
    """What the checks share: the connection, the options, and what earlier checks found."""

    ops: Admin
    args: argparse.Namespace
    server: ServerInfo
    missing_tables: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


# -- the connection string, before connecting -------------------------------------------------


def dsn_endpoint(dsn: str) -> tuple[str, list[int]]:
    """The host(s) and port(s) a PostgreSQL URL names (5432 when none is given)."""
    parts = urlsplit(dsn)
    hostspec = parts.netloc.rpartition("@")[2]
    hosts, ports = [], []
    for entry in hostspec.split(","):
        match = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(?::(\d*))?", entry)
        if match is None:
            continue
        hosts.append(match[1].strip("[]"))
        if match[2]:
            ports.append(int(match[2]))
    query = parse_qs(parts.query)
    for value in query.get("port", []):
        ports.extend(int(p) for p in value.split(",") if p.isdigit())
    if not any(hosts) and "host" in query:
        hosts = query["host"]
    return ",".join(h for h in hosts if h) or "localhost", ports or [5432]


def pooler_check(dsn: str) -> Check:
    """The transaction pooler (Supabase port 6543) breaks LISTEN: spot it from the URL."""
    host, ports = dsn_endpoint(dsn)
    data = {"host": host, "ports": ports}
    if TRANSACTION_POOLER_PORT in ports:
        return Check(
            "connection string", "fail",
            f"port {TRANSACTION_POOLER_PORT} is Supabase's transaction pooler: LISTEN/NOTIFY does not work "
            "through it, so the daemon would never hear of new or changed posts. Use the direct connection "
            "(db.<project>.supabase.co:5432) or the session pooler (<region>.pooler.supabase.com:5432)",
            data,
        )
    if host.endswith("pooler.supabase.com"):
        return Check("connection string", "ok", f"Supabase session pooler {host}:{ports[0]} (LISTEN works)", data)
    return Check("connection string", "ok", f"{host}:{','.join(map(str, ports))}", data)


def pooler_behaviour(pids: Sequence[int]) -> Check:
    """Several server processes behind one connection: statements are being pooled."""
    distinct = sorted(set(pids))
    if len(distinct) > 1:
        return Check(
            "session", "fail",
            f"{len(pids)} consecutive statements ran in {len(distinct)} different server processes: a "
            "transaction-mode pooler (PgBouncer/Supavisor pool_mode=transaction) is in between, and LISTEN "
            "cannot work. Connect directly or through a session pooler (Supabase: port 5432)",
            {"backend_pids": distinct},
        )
    return Check("session", "ok", "one server process for the whole connection (no transaction pooler)",
                 {"backend_pid": distinct[0] if distinct else None})


def api_versions(settings: Settings) -> list[Check]:
    """The pinned LinkedIn and Graph API versions against their sunsets (``platforms.versions``)."""
    return [Check(name, status, detail) for name, status, detail in versions.doctor_checks(settings.platforms)]


# -- the checks on a connection, in order ----------------------------------------------------


async def server_version(p: Probe) -> Check:
    ok = p.server.version_num >= MIN_SERVER_VERSION
    return Check("server", "ok" if ok else "fail",
                 f"PostgreSQL {p.server.version}" + ("" if ok else ": 13 or newer is required"),
                 {"version": p.server.version})


async def session(p: Probe) -> Check:
    return pooler_behaviour(await p.ops.backend_pids())


async def tables(p: Probe) -> Check:
    present = await p.ops.tables()
    p.missing_tables = [name for name, there in present.items() if not there]
    if p.missing_tables:
        return Check("tables", "fail", f"missing: {', '.join(p.missing_tables)} (run `scheduler-daemon migrate`)",
                     {"missing": p.missing_tables})
    return Check("tables", "ok", ", ".join(present), {"missing": []})


async def triggers(p: Probe) -> Check:
    found = {t.name: t for t in await p.ops.triggers()}
    absent = [n for n in REQUIRED_TRIGGERS if n not in found]
    disabled = [n for n in REQUIRED_TRIGGERS if n in found and not found[n].enabled]
    wrong = [n for n, fn in REQUIRED_TRIGGERS.items() if n in found and found[n].function != fn]
    if not (absent or disabled or wrong):
        return Check("triggers", "ok", ", ".join(REQUIRED_TRIGGERS))
    parts = [f"missing: {', '.join(absent)}" if absent else "",
             f"disabled: {', '.join(disabled)}" if disabled else "",
             f"calling another function: {', '.join(wrong)}" if wrong else ""]
    return Check("triggers", "fail",
                 "; ".join(p for p in parts if p) + " on content_posts: the daemon would not hear of "
                 "changes (re-apply migrations/002_notify_triggers.sql; ENABLE TRIGGER if disabled)",
                 {"missing": absent, "disabled": disabled, "wrong_function": wrong})


async def migrations(p: Probe) -> Check:
    p.pending = pending = await p.ops.pending_migrations()
    return Check("migrations", "fail" if pending else "ok",
                 f"pending: {', '.join(pending)} (run `scheduler-daemon migrate`)" if pending else "up to date",
                 {"pending": pending})


async def input_rules(p: Probe) -> Check | None:
    if INPUT_RULES_MIGRATION in p.pending or "content_posts" in p.missing_tables:
        return None
    return input_rules_check(await p.ops.input_problems(), await p.ops.unlisted_zones())


def input_rules_check(problems: Sequence[RuleBreach] | None, unlisted_zones: Sequence[str]) -> Check:
    """migrations/004's write-time rules: the rows that break them (None: the scan outlasted
    the statement timeout) and the zone names PostgreSQL knows but the check does not list
    yet. A warning: nothing is changed, the daemon handles such rows as before (a draft with
    a reason), and a write that changes the bad value is checked."""
    lines = [f"{b.rule}: {b.posts} post(s), e.g. {', '.join(str(i) for i in b.ids)}" for b in problems or ()]
    if problems is None:
        lines.append("the scan of the posts outlasted the statement timeout (3 × --timeout): "
                     "rerun with a larger --timeout")
    if unlisted_zones:
        lines.append(f"{len(unlisted_zones)} zone name(s) PostgreSQL knows are refused until the tables' owner runs "
                     f"SELECT scheduler_timezones_refresh(); (e.g. {', '.join(unlisted_zones[:3])})")
    data = {"rules": {b.rule: {"posts": b.posts, "ids": [str(i) for i in b.ids]} for b in problems or ()},
            "unlisted_zones": list(unlisted_zones)}
    if not lines:
        return Check("input rules", "ok", "every post passes the write-time rules of migrations/004", data)
    return Check(
        "input rules", "warn",
        "rows written before migrations/004 are left as they are (the daemon moves the scheduled ones it cannot "
        "publish to draft with a reason; a write that changes a bad value is checked):\n        "
        + "\n        ".join(lines),
        data,
    )


async def listen_notify(p: Probe) -> Check:
    timeout = p.args.timeout
    took = await p.ops.notify_round_trip(timeout)
    if took is None:
        return Check("listen/notify", "fail",
                     f"a NOTIFY did not reach a LISTEN connection within {timeout:g} s: the daemon would "
                     "never hear of new posts (a transaction-mode pooler? use a direct connection or a "
                     "session pooler on port 5432)")
    return Check("listen/notify", "ok", f"NOTIFY came back in {took * 1000:.1f} ms", {"seconds": round(took, 6)})


async def notify_queue(p: Probe) -> Check:
    usage = await p.ops.notification_queue_usage()
    filling = usage > NOTIFY_QUEUE_WARN
    return Check("notify queue", "warn" if filling else "ok",
                 f"{usage:.1%} of the NOTIFY queue in use"
                 + (": some listening session is not reading its notifications" if filling else ""),
                 {"usage": usage})


async def clock(p: Probe) -> Check:
    sample = await p.ops.clock_skew()
    skew_ms, pm_ms = sample.skew * 1000, sample.uncertainty * 1000
    side = "ahead of" if skew_ms >= 0 else "behind"
    detail = f"database clock is {abs(skew_ms):.1f} ms {side} this host (±{pm_ms:.1f} ms)"
    data = {"skew_seconds": sample.skew, "uncertainty_seconds": sample.uncertainty}
    if abs(sample.skew) - sample.uncertainty > CLOCK_SKEW_WARN_SECONDS:
        detail += ": the daemon follows the database clock, but check NTP (timedatectl) on both"
        return Check("clock", "warn", detail, data)
    return Check("clock", "ok", detail, data)


async def tokens(p: Probe) -> Check | None:
    if "platform_connections" in p.missing_tables:
        return None
    days = p.args.expiry_days
    expiring = await p.ops.expiring_connections(days * 86400)
    if not expiring:
        return Check("tokens", "ok", f"no token expires within {days:g} days, none rejected")
    now = await p.ops.now()
    lines = [f"{c.platform} {c.id} account {c.account_id or '-'}: {_token_state(c, now)}" for c in expiring]
    return Check("tokens", "warn",
                 f"{len(expiring)} connection(s) need attention:\n        " + "\n        ".join(lines),
                 {"connections": [asdict(c) for c in expiring]})


def _token_state(c: ConnectionState, now: dt.datetime) -> str:
    if c.needs_reconnect:
        state = "rejected by the platform: the user must reconnect"
    elif c.token_expires_at is not None and c.token_expires_at <= now:
        state = f"expired {format_delay((now - c.token_expires_at).total_seconds())} ago"
    else:
        assert c.token_expires_at is not None  # selected because it expires soon
        state = f"expires in {format_delay((c.token_expires_at - now).total_seconds())}"
    if c.has_refresh_token and not c.needs_reconnect:
        state += " (has a refresh token)"
    return state


CHECKS: tuple[Callable[[Probe], Awaitable[Check | None]], ...] = (
    server_version, session, tables, triggers, migrations, input_rules, listen_notify, notify_queue, clock, tokens,
)


# -- the command ----------------------------------------------------------------------------


async def doctor(settings: Settings, args: argparse.Namespace) -> int:
    checks: list[Check] = []

    def add(check: Check | None) -> None:
        if check is None:
            return
        checks.append(check)
        if not args.json:
            print(f"{check.status:<4}  {check.name}: {SECRETS.scrub(check.detail)}", flush=True)

    for notice in api_versions(settings):
        add(notice)
    dsn, is_embedded = await resolve_dsn(settings, announce=None if args.json else note_embedded)
    if is_embedded:
        add(Check("connection string", "warn", "no DATABASE_URL: checking the embedded PostgreSQL, "
                  "meant for trying the daemon out, not for production"))
    else:
        add(pooler_check(dsn))
    try:
        async with open_admin(dsn, timeout=args.timeout) as ops:
            server = await ops.server()
            add(Check("connect", "ok", f"connected to database {server.database!r}"))
            probe = Probe(ops, args, server)
            for check in CHECKS:
                add(await check(probe))
    except DB_ERRORS as exc:
        add(Check("connect", "fail", f"{type(exc).__name__}: {exc}"))
    failed = [c.name for c in checks if c.status == "fail"]
    if args.json:
        print_json({"ok": not failed, "checks": [{**asdict(c), "detail": SECRETS.scrub(c.detail)} for c in checks]})
    else:
        warned = sum(c.status == "warn" for c in checks)
        print(f"\n{len(failed)} failed, {warned} warning(s), {len(checks) - len(failed) - warned} ok")
    return EXIT_PROBLEM if failed else EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=positive, default=5.0, metavar="SECONDS",
                   help="for connecting and for the NOTIFY to come back (default 5)")
    expiry_days_flag(p)
    json_flag(p)


DOCTOR = Command(
    "doctor", "check the database, triggers, migrations, LISTEN/NOTIFY, clock and tokens", doctor, _arguments,
    "Check everything the daemon relies on, each printed as ok, warn or fail:\n"
    "  api versions       the pinned LinkedIn and Graph API versions are not near their sunset\n"
    "  connection string  not Supabase's transaction pooler (port 6543 breaks LISTEN)\n"
    "  connect            the database answers within --timeout\n"
    "  server             PostgreSQL 13 or newer\n"
    "  session            no transaction-mode pooler in between (same server process throughout)\n"
    "  tables, triggers   the schema and the NOTIFY triggers of migrations/002 are in place\n"
    "  migrations         none pending\n"
    "  input rules        no post breaks the write-time rules of migrations/004 (rows written before it)\n"
    "  listen/notify      a NOTIFY on a private channel reaches a LISTEN connection\n"
    "  notify queue       not filling up\n"
    "  clock              database clock vs this host\n"
    "  tokens             platform connections whose token expires soon or was rejected\n\n"
    "Read-only: it changes nothing. Exit status 1 when any check fails.",
)
