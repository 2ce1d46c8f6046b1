"""Operator subcommands: status, doctor, schedule, cancel, retry, connections,
install-service, embedded.

``register`` adds them to the CLI's subparsers, each with ``set_defaults(handler=...)``:
an ``async (settings, args) -> exit code`` function. Exit codes: 0 all is well, 1 a
problem was found or the action failed, 2 bad usage or configuration. Results go to
stdout (``--json`` for scripts), diagnostics to stderr. Every statement lives in
``db/ops.sql``; no command ever prints a token.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import inspect
import json
import os
import re
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .config import Settings
from .db import embedded
from .db.operations import DatabaseErrors, Operations, open_operations
from .errors import InvalidScheduleError
from .logs import SECRETS
from .models import Connection, ScheduleKey
from .timing import UTC, due_instant, format_delay, zone

Handler = Callable[[Any, argparse.Namespace], Awaitable[int]]

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
EXIT_CODES = "Exit status: 0 ok, 1 problem found or action failed, 2 bad usage or configuration."

# Triggers of migrations/002: without them the daemon never hears of new or changed posts.
REQUIRED_TRIGGERS = {
    "scheduler_posts_before_update": "scheduler_posts_before_update",
    "scheduler_posts_notify": "scheduler_posts_notify",
    "scheduler_posts_notify_truncate": "scheduler_posts_notify_truncate",
}
TRANSACTION_POOLER_PORT = 6543
CLOCK_SKEW_WARN_SECONDS = 0.5  # the daemon logs a warning past this too
NOTIFY_QUEUE_WARN = 0.5
PAST_TOLERANCE = dt.timedelta(seconds=5)
# Platforms whose connection needs no access token (webhook: the token only signs).
TOKENLESS_PLATFORMS = frozenset({"log", "webhook"})


class UsageError(Exception):
    """Bad input from the command line: printed, exit status 2."""


def register(sub: Any) -> None:
    """Add the operator commands to the CLI's subparsers."""
    _register_status(sub)
    _register_doctor(sub)
    _register_schedule(sub)
    _register_cancel(sub)
    _register_retry(sub)
    _register_connections(sub)
    _register_install_service(sub)
    _register_embedded(sub)


def _parser(sub: Any, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=description, epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def _post_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a post id (a UUID)") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


# -- shared plumbing ----------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _print_json(data: object) -> None:
    print(json.dumps(data, default=_json_default, indent=2, sort_keys=False))


def _err(message: str) -> None:
    print(f"scheduler-daemon: {SECRETS.scrub(message)}", file=sys.stderr)


async def _resolve_dsn(settings: Settings, *, quiet: bool = False) -> tuple[str, bool]:
    """DATABASE_URL, or the embedded PostgreSQL (as ``run`` does)."""
    if settings.database_url:
        SECRETS.add_url(settings.database_url)
        return settings.database_url, False
    if not quiet:
        print(f"(no DATABASE_URL: using the embedded PostgreSQL in {settings.state_dir})", file=sys.stderr)
    dsn = await embedded.embedded_dsn(settings.state_dir)
    SECRETS.add_url(dsn)
    return dsn, True


class _SchemaMissing(Exception):
    pass


@asynccontextmanager
async def _operations(settings: Settings, *, timeout: float = 10.0, quiet: bool = False) -> AsyncIterator[Operations]:
    """A connection for one command, after checking the schema is current."""
    dsn, _ = await _resolve_dsn(settings, quiet=quiet)
    async with open_operations(dsn, timeout=timeout) as ops:
        missing = await ops.pending_migrations()
        if missing:
            raise _SchemaMissing(
                f"the database lacks migrations {', '.join(missing)}: run `scheduler-daemon migrate`"
            )
        yield ops


def _guarded(handler: Handler) -> Handler:
    """Turn database and usage errors into a message on stderr and an exit status."""

    async def run(settings: Any, args: argparse.Namespace) -> int:
        try:
            return await handler(settings, args)
        except UsageError as exc:
            _err(str(exc))
            return EXIT_USAGE
        except _SchemaMissing as exc:
            _err(str(exc))
            return EXIT_USAGE
        except DatabaseErrors as exc:
            _err(f"database error: {type(exc).__name__}: {exc}")
            return EXIT_PROBLEM

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _ago(seconds: float) -> str:
    return f"in {format_delay(seconds)}" if seconds >= 0 else f"{format_delay(seconds)} ago"


def _iso(value: dt.datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


# -- status -------------------------------------------------------------------------------


def _register_status(sub: Any) -> None:
    p = _parser(
        sub, "status", "posts by status, next due, overdue, recent failures, stuck publishes",
        "Summarise the posts table as the daemon sees it: counts by status, the next posts due,\n"
        "scheduled posts already past their due time (overdue: no daemon is arming them),\n"
        "failed attempts in the last 24 hours (publish_attempts), every post the daemon sent\n"
        "back to draft in that time with its reason (rejected ones included), and posts held in\n"
        "'publishing' for too long (a daemon that died mid-publish).\n\n"
        "Exit status 1 when a post is overdue or stuck, or a scheduled row has no valid due time.",
    )
    p.add_argument("--limit", type=_count, default=10, help="how many upcoming posts to list (default 10)")
    p.add_argument(
        "--overdue-after", type=_positive, default=60.0, metavar="SECONDS",
        help="a scheduled post this far past its due time counts as overdue (default 60)",
    )
    p.add_argument(
        "--stuck-after", type=_positive, default=900.0, metavar="SECONDS",
        help="a post in 'publishing' for longer than this counts as stuck (default 900)",
    )
    p.add_argument(
        "--failures", type=_count, default=20, metavar="N", help="how many recent failed attempts to list (default 20)"
    )
    p.add_argument(
        "--drafts", type=_count, default=100, metavar="N",
        help="how many of the drafts the daemon produced in the last 24 h to list (default 100)",
    )
    _json_flag(p)
    p.set_defaults(handler=_guarded(status))


async def status(settings: Settings, args: argparse.Namespace) -> int:
    """Counts by status, upcoming, overdue, unschedulable, stuck and failed posts."""
    window = 24 * 3600.0
    async with _operations(settings, quiet=args.json) as ops:
        now = await ops.now()
        counts = await ops.status_counts()
        scheduled = await ops.scheduled()
        stuck = await ops.stuck(args.stuck_after)
        failure_counts = await ops.failure_counts(window)
        failures = await ops.recent_failures(window, args.failures)
        drafts_total, drafts = await ops.recent_drafts(window, args.drafts)

    upcoming: list[dict[str, Any]] = []
    overdue: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for row in scheduled:
        key = ScheduleKey(row["scheduled_date"], row["scheduled_time"], row["timezone"], row["retry_at"])
        item = {"id": row["id"], "platform": row["platform"], "content": row["content"],
                "attempt_count": row["attempt_count"], "retry": row["retry_at"] is not None}
        try:
            due = due_instant(key)
        except InvalidScheduleError as exc:
            invalid.append({**item, "error": str(exc)})
            continue
        item.update(due=due, due_in_seconds=round((due - now).total_seconds(), 3))
        (overdue if (now - due).total_seconds() > args.overdue_after else upcoming).append(item)
    upcoming.sort(key=lambda i: i["due"])
    overdue.sort(key=lambda i: i["due"])
    for s in stuck:
        s["held_seconds"] = None if s["held_seconds"] is None else round(s["held_seconds"], 1)
    problems = len(overdue) + len(stuck) + len(invalid)

    if args.json:
        _print_json({
            "now": now,
            "counts": counts,
            "next_due": upcoming[: args.limit],
            "scheduled": len(scheduled),
            "overdue": overdue,
            "unschedulable": invalid,
            "stuck": stuck,
            "stuck_after_seconds": args.stuck_after,
            "failures": {"window_seconds": window, "counts": failure_counts, "recent": failures},
            "drafts": {"window_seconds": window, "total": drafts_total, "recent": drafts},
            "problems": problems,
        })
        return EXIT_PROBLEM if problems else EXIT_OK

    total = sum(counts.values())
    by_status = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
    print(f"Database time {_iso(now)}. Posts: {total} ({by_status})")
    print(f"\nNext due ({min(len(upcoming), args.limit)} of {len(upcoming)} scheduled):")
    for item in upcoming[: args.limit]:
        retry = f" retry {item['attempt_count']}" if item["retry"] else ""
        print(f"  {_iso(item['due'])}  {_ago(item['due_in_seconds']):>18}  {item['platform']:<10} "
              f"{item['id']}{retry}  {item['content']!r}")
    if not upcoming:
        print("  (nothing)")
    if overdue:
        print(f"\nOVERDUE: {len(overdue)} scheduled post(s) more than {format_delay(args.overdue_after)} past due "
              "(is a daemon running? see `scheduler-daemon doctor`, `journalctl -u scheduler-daemon`):")
        for item in overdue:
            print(f"  {_iso(item['due'])}  {_ago(item['due_in_seconds']):>18}  {item['platform']:<10} {item['id']}")
    if invalid:
        print(f"\nUNSCHEDULABLE: {len(invalid)} scheduled post(s) without a valid due time "
              "(a running daemon moves them back to draft):")
        for item in invalid:
            print(f"  {item['platform']:<10} {item['id']}  {item['error']}")
    if stuck:
        print(f"\nSTUCK: {len(stuck)} post(s) in 'publishing' for more than {format_delay(args.stuck_after)} "
              "(a running daemon resolves a claim whose holder is gone after SCHEDULER_RECOVERY_AFTER_SECONDS; "
              "if these stay, is the holder hung, or is no daemon running?):")
        for s in stuck:
            held = "?" if s["held_seconds"] is None else format_delay(s["held_seconds"])
            print(f"  {s['platform']:<10} {s['id']}  claimed by {s['claimed_by'] or '?'} "
                  f"at {_iso(s['claimed_at'])} ({held})")
    total_failed = sum(int(c["attempts"]) for c in failure_counts)
    summary = ", ".join(f"{c['platform']}/{c['outcome']} {c['attempts']}" for c in failure_counts)
    print(f"\nFailed attempts in the last 24 h: {total_failed}" + (f" ({summary})" if summary else ""))
    for f in failures:
        error = (f["error_message"] or "").replace("\n", " ")
        print(f"  {_iso(f['finished_at'])}  {f['platform']:<10} {f['outcome']:<8} {f['post_id']} "
              f"attempt {f['attempt']}: {error[:160]}")
    _print_drafts(drafts_total, drafts)
    return EXIT_PROBLEM if problems else EXIT_OK


def _print_drafts(total: int, drafts: list[dict[str, Any]]) -> None:
    shown = "" if total == len(drafts) else f" (the newest {len(drafts)}; --drafts N lists more)"
    print(f"\nSent back to draft in the last 24 h: {total}{shown}")
    for d in drafts:
        reason = (d["error_message"] or "").replace("\n", " ")
        print(f"  {_iso(d['updated_at'])}  {d['platform']:<10} {d['id']}  after {d['attempt_count']} attempt(s): "
              f"{reason[:200]}")


# -- doctor -------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


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


def _register_doctor(sub: Any) -> None:
    p = _parser(
        sub, "doctor", "check the database, triggers, migrations, LISTEN/NOTIFY, clock and tokens",
        "Check everything the daemon relies on, each printed as ok, warn or fail:\n"
        "  connection string  not Supabase's transaction pooler (port 6543 breaks LISTEN)\n"
        "  connect            the database answers within --timeout\n"
        "  server             PostgreSQL 13 or newer\n"
        "  session            no transaction-mode pooler in between (same server process throughout)\n"
        "  tables, triggers   the schema and the NOTIFY triggers of migrations/002 are in place\n"
        "  migrations         none pending\n"
        "  listen/notify      a NOTIFY on a private channel reaches a LISTEN connection\n"
        "  notify queue       not filling up\n"
        "  clock              database clock vs this host\n"
        "  tokens             platform connections whose token expires soon or was rejected\n\n"
        "Read-only: it changes nothing. Exit status 1 when any check fails.",
    )
    p.add_argument("--timeout", type=_positive, default=5.0, metavar="SECONDS",
                   help="for connecting and for the NOTIFY to come back (default 5)")
    p.add_argument("--expiry-days", type=_positive, default=7.0, metavar="DAYS",
                   help="warn about tokens expiring within this many days (default 7)")
    _json_flag(p)
    p.set_defaults(handler=_guarded(doctor))


async def doctor(settings: Settings, args: argparse.Namespace) -> int:
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        if not args.json:
            print(f"{check.status:<4}  {check.name}: {SECRETS.scrub(check.detail)}", flush=True)

    dsn, is_embedded = await _resolve_dsn(settings, quiet=args.json)
    if is_embedded:
        add(Check("connection string", "warn", "no DATABASE_URL: checking the embedded PostgreSQL, "
                  "meant for trying the daemon out, not for production"))
    else:
        add(pooler_check(dsn))
    try:
        async with open_operations(dsn, timeout=args.timeout) as ops:
            server = await ops.server()
            add(Check("connect", "ok", f"connected to database {server['database']!r}"))
            await _doctor_checks(ops, args, add, server)
    except DatabaseErrors as exc:
        add(Check("connect", "fail", f"{type(exc).__name__}: {exc}"))
    failed = [c.name for c in checks if c.status == "fail"]
    if args.json:
        _print_json({
            "ok": not failed,
            "checks": [{**asdict(c), "detail": SECRETS.scrub(c.detail)} for c in checks],
        })
    else:
        warned = sum(c.status == "warn" for c in checks)
        print(f"\n{len(failed)} failed, {warned} warning(s), {len(checks) - len(failed) - warned} ok")
    return EXIT_PROBLEM if failed else EXIT_OK


async def _doctor_checks(
    ops: Operations, args: argparse.Namespace, add: Callable[[Check], None], server: dict[str, Any]
) -> None:
    version = int(server["version_num"])
    add(Check("server", "ok" if version >= 130000 else "fail",
              f"PostgreSQL {server['version']}" + ("" if version >= 130000 else ": 13 or newer is required"),
              {"version": server["version"]}))
    add(pooler_behaviour(await ops.backend_pids()))

    tables = await ops.tables()
    missing_tables = [name for name, present in tables.items() if not present]
    add(Check("tables", "fail" if missing_tables else "ok",
              f"missing: {', '.join(missing_tables)} (run `scheduler-daemon migrate`)" if missing_tables
              else ", ".join(tables), {"missing": missing_tables}))

    triggers = {t["name"]: t for t in await ops.triggers()}
    absent = [n for n in REQUIRED_TRIGGERS if n not in triggers]
    disabled = [n for n in REQUIRED_TRIGGERS if n in triggers and not triggers[n]["enabled"]]
    wrong = [n for n, fn in REQUIRED_TRIGGERS.items() if n in triggers and triggers[n]["function"] != fn]
    if absent or disabled or wrong:
        parts = [f"missing: {', '.join(absent)}" if absent else "",
                 f"disabled: {', '.join(disabled)}" if disabled else "",
                 f"calling another function: {', '.join(wrong)}" if wrong else ""]
        add(Check("triggers", "fail",
                  "; ".join(p for p in parts if p) + " on content_posts: the daemon would not hear of "
                  "changes (re-apply migrations/002_notify_triggers.sql; ENABLE TRIGGER if disabled)",
                  {"missing": absent, "disabled": disabled, "wrong_function": wrong}))
    else:
        add(Check("triggers", "ok", ", ".join(REQUIRED_TRIGGERS)))

    pending = await ops.pending_migrations()
    add(Check("migrations", "fail" if pending else "ok",
              f"pending: {', '.join(pending)} (run `scheduler-daemon migrate`)" if pending else "up to date",
              {"pending": pending}))

    took = await ops.notify_round_trip(args.timeout)
    if took is None:
        add(Check("listen/notify", "fail",
                  f"a NOTIFY did not reach a LISTEN connection within {args.timeout:g} s: the daemon would "
                  "never hear of new posts (a transaction-mode pooler? use a direct connection or a "
                  "session pooler on port 5432)"))
    else:
        add(Check("listen/notify", "ok", f"NOTIFY came back in {took * 1000:.1f} ms", {"seconds": round(took, 6)}))

    usage = await ops.notification_queue_usage()
    add(Check("notify queue", "warn" if usage > NOTIFY_QUEUE_WARN else "ok",
              f"{usage:.1%} of the NOTIFY queue in use" + (
                  ": some listening session is not reading its notifications" if usage > NOTIFY_QUEUE_WARN else ""),
              {"usage": usage}))

    clock = await ops.clock_skew()
    skew_ms, pm_ms = clock.skew * 1000, clock.uncertainty * 1000
    detail = f"database clock is {abs(skew_ms):.1f} ms {'ahead of' if skew_ms >= 0 else 'behind'} this host (±{pm_ms:.1f} ms)"
    if abs(clock.skew) - clock.uncertainty > CLOCK_SKEW_WARN_SECONDS:
        detail += ": the daemon follows the database clock, but check NTP (timedatectl) on both"
        add(Check("clock", "warn", detail, {"skew_seconds": clock.skew, "uncertainty_seconds": clock.uncertainty}))
    else:
        add(Check("clock", "ok", detail, {"skew_seconds": clock.skew, "uncertainty_seconds": clock.uncertainty}))

    if "platform_connections" in missing_tables:
        return
    expiring = await ops.expiring_connections(args.expiry_days * 86400)
    now = await ops.now()
    if not expiring:
        add(Check("tokens", "ok", f"no token expires within {args.expiry_days:g} days, none rejected"))
        return
    lines = []
    for c in expiring:
        if c["needs_reconnect"]:
            state = "rejected by the platform: the user must reconnect"
        elif c["token_expires_at"] <= now:
            state = f"expired {format_delay((now - c['token_expires_at']).total_seconds())} ago"
        else:
            state = f"expires in {format_delay((c['token_expires_at'] - now).total_seconds())}"
        if c["has_refresh_token"] and not c["needs_reconnect"]:
            state += " (has a refresh token)"
        lines.append(f"{c['platform']} {c['id']} account {c['account_id'] or '-'}: {state}")
    add(Check("tokens", "warn",
              f"{len(expiring)} connection(s) need attention:\n        " + "\n        ".join(lines),
              {"connections": expiring}))


# -- schedule, cancel, retry --------------------------------------------------------------


def parse_at(text: str, now: dt.datetime) -> dt.datetime:
    """``--at``: 'now' or an ISO 8601 date-time, with or without an offset."""
    if text.strip().lower() == "now":
        return now
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not an ISO 8601 date-time: e.g. 2025-06-01T09:30, 2025-06-01T09:30:00+02:00, "
            "2025-06-01T07:30Z or 'now'"
        ) from None


def local_schedule(when: dt.datetime, timezone: str) -> tuple[dt.date, dt.time, dt.datetime, str | None]:
    """The (date, time) to store in ``timezone`` for ``when``, its due instant, and a note.

    A naive ``when`` is a wall-clock time in ``timezone``; an aware one is converted to
    it. UsageError when it cannot be stored exactly (the second occurrence of a repeated
    hour: the daemon reads a repeated local time as the first one).
    """
    try:
        tz = zone(timezone)
    except InvalidScheduleError as exc:
        raise UsageError(str(exc)) from None
    local = when if when.tzinfo is None else when.astimezone(tz).replace(tzinfo=None)
    date, time_of_day = local.date(), local.time()
    due = due_instant(ScheduleKey(date, time_of_day, timezone))
    note = None
    if when.tzinfo is not None and due != when:
        raise UsageError(
            f"{when.isoformat()} is the second {time_of_day.isoformat()} of a daylight-saving change in "
            f"{timezone}, and a repeated local time is read as its first occurrence ({due.isoformat()}): "
            "give it with --timezone UTC instead"
        )
    if when.tzinfo is None and due.astimezone(tz).replace(tzinfo=None) != local:
        note = (f"{local.isoformat()} does not exist in {timezone} (clocks jump forward): it is due at "
                f"{due.astimezone(tz).isoformat()}")
    return date, time_of_day, due, note


def _register_schedule(sub: Any) -> None:
    p = _parser(
        sub, "schedule", "schedule (or reschedule) one post at a given time",
        "Set a draft or scheduled post's scheduled_date, scheduled_time and timezone and make it\n"
        "'scheduled', with a plain UPDATE: the database trigger notifies the running daemon,\n"
        "which arms it. A pending retry is dropped: the new time is when it goes out.\n\n"
        "--at without an offset (2025-06-01T09:30) is a wall-clock time in --timezone; with one\n"
        "(…+02:00 or …Z) it is converted to --timezone. --timezone defaults to the post's own.\n"
        "Exit status 1 when the post does not exist or is publishing or published.",
    )
    p.add_argument("post_id", type=_post_id, metavar="POST_ID", help="the post's id (content_posts.id)")
    p.add_argument("--at", required=True, metavar="ISO8601", help="when to publish: an ISO 8601 date-time, or 'now'")
    p.add_argument("--timezone", metavar="TZ", help="IANA zone to store the time in, e.g. Europe/Paris "
                   "(default: the post's timezone)")
    _json_flag(p)
    p.set_defaults(handler=_guarded(schedule))


def _register_retry(sub: Any) -> None:
    p = _parser(
        sub, "retry", "schedule a failed draft again, now or at --at",
        "Put a draft that carries an error_message (a failed or missed publish) back to\n"
        "'scheduled', due now or at --at. Like a user reschedule this starts a fresh series of\n"
        "attempts: the trigger clears the error, the attempt count and the publish checkpoints.\n"
        "If the error says the outcome is unknown, check the platform first: the post may be out.\n"
        "Exit status 1 when the post does not exist or is not a draft with an error.",
    )
    p.add_argument("post_id", type=_post_id, metavar="POST_ID", help="the post's id (content_posts.id)")
    p.add_argument("--at", metavar="ISO8601", help="when to publish (default: now)")
    p.add_argument("--timezone", metavar="TZ", help="IANA zone to store the time in (default: the post's timezone)")
    _json_flag(p)
    p.set_defaults(handler=_guarded(retry))


def _register_cancel(sub: Any) -> None:
    p = _parser(
        sub, "cancel", "unschedule one post (back to draft)",
        "Move a scheduled post back to 'draft' (its date and time are kept); the daemon disarms\n"
        "it. A draft is left as it is (exit 0). Exit status 1 when the post does not exist, is\n"
        "being published right now, or was published.",
    )
    p.add_argument("post_id", type=_post_id, metavar="POST_ID", help="the post's id (content_posts.id)")
    _json_flag(p)
    p.set_defaults(handler=_guarded(cancel))


def _not_changed(post_id: uuid.UUID, post: dict[str, Any] | None, wanted: str) -> str:
    if post is None:
        return f"no post {post_id}"
    status = post["status"]
    if status == "publishing":
        return f"post {post_id} is being published right now (claimed by {post['claimed_by'] or '?'}): {wanted}"
    if status == "published":
        return f"post {post_id} was already published at {_iso(post['published_at'])}: {wanted}"
    return f"post {post_id} is {status!r}: {wanted}"


def _report_post(args: argparse.Namespace, action: str, row: dict[str, Any], due: dt.datetime | None,
                 note: str | None, previous_error: str | None = None) -> None:
    if args.json:
        _print_json({"action": action, "post": row, "due": due, "note": note, "previous_error": previous_error})
        return
    if due is not None:
        local = f"{row['scheduled_date']}T{row['scheduled_time']} {row['timezone']}"
        print(f"{action}: post {row['id']} ({row['platform']}) is due {due.isoformat()} ({local})")
    else:
        print(f"{action}: post {row['id']} ({row['platform']}) is a draft now")
    if previous_error:
        print(f"  previous error: {previous_error}")
    if note:
        print(f"  note: {note}")


async def schedule(settings: Settings, args: argparse.Namespace) -> int:
    async with _operations(settings, quiet=args.json) as ops:
        post = await ops.post(args.post_id)
        if post is None:
            _err(f"no post {args.post_id}")
            return EXIT_PROBLEM
        timezone = args.timezone or post["timezone"] or "UTC"
        now = await ops.now()
        when = parse_at(args.at, now)
        date, time_of_day, due, note = local_schedule(when, timezone)
        if due < now - PAST_TOLERANCE:
            raise UsageError(f"{due.isoformat()} is in the past (database time {_iso(now)}): use --at now to "
                             "publish it right away")
        row = await ops.schedule(args.post_id, date, time_of_day, timezone, statuses=("draft", "scheduled"))
        if row is None:
            _err(_not_changed(args.post_id, await ops.post(args.post_id), "not rescheduled"))
            return EXIT_PROBLEM
    _report_post(args, "scheduled", row, due, note)
    return EXIT_OK


async def retry(settings: Settings, args: argparse.Namespace) -> int:
    async with _operations(settings, quiet=args.json) as ops:
        post = await ops.post(args.post_id)
        if post is None:
            _err(f"no post {args.post_id}")
            return EXIT_PROBLEM
        if post["status"] != "draft" or post["error_message"] is None:
            what = "a draft without an error" if post["status"] == "draft" else None
            _err(_not_changed(args.post_id, post, "only a failed draft can be retried") if what is None
                 else f"post {args.post_id} is {what}: use `schedule` to schedule it")
            return EXIT_PROBLEM
        timezone = args.timezone or post["timezone"] or "UTC"
        try:
            zone(timezone)
        except InvalidScheduleError as exc:
            raise UsageError(f"{exc}; pass --timezone to fix the post's timezone") from None
        now = await ops.now()
        when = now if args.at is None else parse_at(args.at, now)
        date, time_of_day, due, note = local_schedule(when, timezone)
        if args.at is not None and due < now - PAST_TOLERANCE:
            raise UsageError(f"{due.isoformat()} is in the past (database time {_iso(now)}): leave out --at "
                             "to retry now")
        row = await ops.schedule(
            args.post_id, date, time_of_day, timezone, statuses=("draft",), require_error=True
        )
        if row is None:
            _err(_not_changed(args.post_id, await ops.post(args.post_id), "not retried"))
            return EXIT_PROBLEM
    _report_post(args, "retry scheduled", row, due, note, previous_error=post["error_message"])
    return EXIT_OK


async def cancel(settings: Settings, args: argparse.Namespace) -> int:
    async with _operations(settings, quiet=args.json) as ops:
        row = await ops.cancel(args.post_id)
        if row is None:
            post = await ops.post(args.post_id)
            if post is not None and post["status"] == "draft":
                if args.json:
                    _print_json({"action": "none", "post": post})
                else:
                    print(f"post {args.post_id} is already a draft: nothing to do")
                return EXIT_OK
            _err(_not_changed(args.post_id, post, "cannot cancel it"))
            return EXIT_PROBLEM
    _report_post(args, "cancelled", row, None, None)
    return EXIT_OK


# -- connections --------------------------------------------------------------------------


def _register_connections(sub: Any) -> None:
    p = _parser(
        sub, "connections", "list platform connections (never their tokens); --test checks them",
        "List platform_connections: id, user, platform, account, token expiry, whether the\n"
        "platform rejected the token (needs_reconnect). Tokens are never printed, only whether\n"
        "one is set.\n\n"
        "--test checks each one: a known platform, not rejected, a token where the platform\n"
        "needs one, not expired without a refresh token, and the platform adapter's own\n"
        "check_connection when it has one. Exit status 1 when any connection fails.",
    )
    p.add_argument("--platform", help="only this platform")
    p.add_argument("--user", type=_post_id, metavar="USER_ID", help="only this user's connections")
    p.add_argument("--test", action="store_true", help="check each connection (exit status 1 if any fails)")
    p.add_argument("--expiry-days", type=_positive, default=7.0, metavar="DAYS",
                   help="with --test, warn about tokens expiring within this many days (default 7)")
    _json_flag(p)
    p.set_defaults(handler=_guarded(connections))


def generic_problems(row: dict[str, Any], known: set[str], now: dt.datetime, expiry: dt.timedelta) -> tuple[list[str], list[str]]:
    """(failures, warnings) of one connection row, from what every platform needs."""
    fails: list[str] = []
    warns: list[str] = []
    platform = row["platform"]
    if platform not in known:
        fails.append(f"unknown platform {platform!r} (supported: {', '.join(sorted(known))})")
    if row["needs_reconnect"]:
        fails.append("the platform rejected its token: the user must reconnect")
    needs_token = platform not in TOKENLESS_PLATFORMS and not (
        platform == "discord" and "webhook_url" in row["metadata_keys"]
    )
    if needs_token and not row["has_access_token"]:
        fails.append("no access token")
    expires = row["token_expires_at"]
    if expires is not None and row["has_access_token"]:
        if expires <= now:
            (warns if row["has_refresh_token"] else fails).append(
                f"token expired {format_delay((now - expires).total_seconds())} ago"
                + (" (the daemon will try its refresh token)" if row["has_refresh_token"] else " and there is no refresh token")
            )
        elif expires - now < expiry:
            warns.append(f"token expires in {format_delay((expires - now).total_seconds())}")
    return fails, warns


async def _adapter_problems(settings: Settings, ops: Operations, args: argparse.Namespace) -> dict[uuid.UUID, list[str]]:
    """Problems reported by the adapters that define ``check_connection(connection)``
    (returning a list of problems, possibly awaitable; an exception is a problem too)."""
    from .platforms.registry import Registry

    found: dict[uuid.UUID, list[str]] = {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(settings.http_timeout_seconds), follow_redirects=False) as client:
        registry = Registry.build(settings.platforms, client)
        checks: dict[str, Callable[[Connection], Any]] = {}
        for name in registry.names:
            check = getattr(registry.get(name), "check_connection", None)
            if callable(check):
                checks[name] = check
        if not checks:
            return found
        for connection in await ops.connections_full(args.platform, args.user):
            check = checks.get(connection.platform)
            if check is None:
                continue
            try:
                result = check(connection)
                if inspect.isawaitable(result):
                    result = await result
                problems = [str(p) for p in (result or [])]
            except Exception as exc:  # an adapter's failure is this connection's problem, not ours
                problems = [f"{type(exc).__name__}: {exc}"]
            if problems:
                found[connection.id] = [SECRETS.scrub(p) for p in problems]
    return found


async def connections(settings: Settings, args: argparse.Namespace) -> int:
    from .platforms.registry import FACTORIES

    async with _operations(settings, quiet=args.json) as ops:
        listed = await ops.connections(args.platform, args.user)
        now = await ops.now()
        adapter = await _adapter_problems(settings, ops, args) if args.test else {}
    known = {f.name for f in FACTORIES}
    failed = 0
    for row in listed:
        if args.test:
            fails, warns = generic_problems(row, known, now, dt.timedelta(days=args.expiry_days))
            fails += adapter.get(row["id"], [])
            row["check"] = "fail" if fails else "warn" if warns else "ok"
            row["problems"] = fails + warns
            failed += bool(fails)
    if args.json:
        _print_json({"connections": listed, "tested": args.test, "failed": failed})
    else:
        if not listed:
            print("no platform connections" + (" match" if args.platform or args.user else ""))
        for row in listed:
            expiry = "never" if row["token_expires_at"] is None else _iso(row["token_expires_at"])
            token = "token set" if row["has_access_token"] else "NO TOKEN"
            line = (f"{row['id']}  {row['platform']:<10} user {row['user_id']}  account {row['account_id'] or '-'}  "
                    f"{token}, expires {expiry}{'  NEEDS RECONNECT' if row['needs_reconnect'] else ''}")
            if args.test:
                line = f"{row['check']:<4}  {line}"
            print(line)
            for problem in row.get("problems", []):
                print(f"        {problem}")
        if args.test:
            print(f"\n{len(listed)} connection(s), {failed} failed")
    return EXIT_PROBLEM if failed else EXIT_OK


# -- install-service ----------------------------------------------------------------------

UNIT_NAME = "scheduler-daemon.service"
ENV_TEMPLATE = "scheduler-daemon.env.example"
DEFAULT_ENV_DIR = "/etc/scheduler-daemon"
_REPO_SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"


def read_template(name: str) -> str:
    """A file of the repository's systemd/ folder: from the installed package
    (``scheduler_daemon.units``, package data) or, in a source checkout, systemd/."""
    try:
        resource = files("scheduler_daemon.units").joinpath(name)
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    path = _REPO_SYSTEMD / name
    if path.is_file():
        return path.read_text(encoding="utf-8")
    raise UsageError(f"{name} is not shipped with this installation (looked in the package and {_REPO_SYSTEMD})")


def entry_point() -> str:
    """The command systemd should run: this interpreter's scheduler-daemon script."""
    script = Path(sys.executable).with_name("scheduler-daemon")
    if os.access(script, os.X_OK):
        return _quote(str(script))
    return f"{_quote(sys.executable)} -m scheduler_daemon.cli"


def _quote(path: str) -> str:
    return f'"{path}"' if re.search(r"\s", path) else path


def render_unit(template: str, exec_start: str, env_dir: str) -> str:
    text, count = re.subn(r"^ExecStart=\S+ run$", f"ExecStart={exec_start} run", template, flags=re.M)
    if count != 1:
        raise UsageError("the unit template has no single `ExecStart=... run` line to point at this installation")
    if env_dir.rstrip("/") != DEFAULT_ENV_DIR:
        text = text.replace(f"{DEFAULT_ENV_DIR}/", f"{env_dir.rstrip('/')}/")
    stamp = (f"# Written by `scheduler-daemon install-service` on {dt.date.today().isoformat()} for\n"
             f"#   {exec_start}\n")
    return stamp + text


def _hidden_from_service(exec_start: str) -> str | None:
    """Why the unit's DynamicUser could not run ``exec_start``, if we can tell."""
    path = Path(exec_start.strip('"').split(" ")[0])
    for hidden in ("/home", "/root", "/run/user"):
        if path.is_relative_to(hidden):
            return (f"{path} is under {hidden}, which ProtectHome=yes hides from the service: install the "
                    "virtualenv under /opt (e.g. python3 -m venv /opt/scheduler-daemon/.venv) and run "
                    "install-service with that interpreter")
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if parent != path and not mode & stat.S_IXOTH:
            return (f"{parent} is not searchable by other users (mode {stat.filemode(mode)}): the service runs "
                    "as a dynamic user and needs read access to the virtualenv (chmod o+rx)")
    return None


def write_file(path: Path, text: str, mode: int, force: bool) -> str:
    """Write ``text`` with exactly ``mode`` (never wider meanwhile); returns what happened:
    written, replaced, unchanged or kept (it exists, differs, and ``force`` is off)."""
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            os.chmod(path, mode)
            return "unchanged"
        if not force:
            return "kept"
        outcome = "replaced"
    else:
        outcome = "written"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return outcome


def _register_install_service(sub: Any) -> None:
    p = _parser(
        sub, "install-service", "write the systemd unit and an environment-file template for this machine",
        "Write scheduler-daemon.service (ExecStart= pointing at this installation's\n"
        "scheduler-daemon) into --unit-dir, and the environment-file template into\n"
        "--env-dir/env (mode 0600). Existing files are never replaced without --force.\n"
        "--prefix stages everything under another root (packaging, tests); the paths written\n"
        "into the unit stay the real ones. Exit status 1 when an existing, different unit\n"
        "was kept (rerun with --force) or a file cannot be written (run as root).",
    )
    p.add_argument("--prefix", default="/", metavar="DIR", help="root to write under (default /)")
    p.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR",
                   help="where the unit goes (default /etc/systemd/system)")
    p.add_argument("--env-dir", default=DEFAULT_ENV_DIR, metavar="DIR",
                   help=f"where the environment file and the database_url credential live (default {DEFAULT_ENV_DIR})")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(handler=_guarded(install_service))


async def install_service(settings: Settings, args: argparse.Namespace) -> int:
    for name, value in (("--unit-dir", args.unit_dir), ("--env-dir", args.env_dir)):
        if not value.startswith("/"):
            raise UsageError(f"{name} must be an absolute path, not {value!r}")
    prefix = Path(args.prefix)
    exec_start = entry_point()
    unit_text = render_unit(read_template(UNIT_NAME), exec_start, args.env_dir)
    env_text = read_template(ENV_TEMPLATE)
    unit_path = prefix / args.unit_dir.lstrip("/") / UNIT_NAME
    env_path = prefix / args.env_dir.lstrip("/") / "env"
    credential = f"{args.env_dir.rstrip('/')}/database_url"
    try:
        unit_outcome = write_file(unit_path, unit_text, 0o644, args.force)
        env_outcome = write_file(env_path, env_text, 0o600, args.force)
    except PermissionError as exc:
        _err(f"cannot write {exc.filename}: permission denied (run as root, e.g. with sudo)")
        return EXIT_PROBLEM
    for path, outcome in ((unit_path, unit_outcome), (env_path, env_outcome)):
        suffix = " (exists and differs; --force replaces it)" if outcome == "kept" else ""
        print(f"{outcome:<9} {path}{suffix}")
    warning = _hidden_from_service(exec_start)
    if warning:
        print(f"\nwarning: {warning}")
    staged = "" if prefix.resolve() == Path("/") else f"\n(files staged under {prefix}: copy them into place first)"
    print(f"""{staged}
Next steps:
  1. Put the database URL in {credential} (one line, readable by root only). Supabase: the
     direct connection or the session pooler, both on port 5432, never the transaction
     pooler on 6543:
       sudo install -d -m 0755 {args.env_dir}
       sudo sh -c 'umask 077; cat > {credential}'   # paste the URL, then Ctrl-D
  2. Review the settings in {args.env_dir.rstrip('/')}/env (every line shows its default).
  3. Apply the migrations once:  sudo sh -c 'DATABASE_URL="$(cat {credential})" {exec_start} migrate'
     and check:                  sudo sh -c 'DATABASE_URL="$(cat {credential})" {exec_start} doctor'
  4. sudo systemctl daemon-reload
  5. sudo systemctl enable --now scheduler-daemon
  6. journalctl -u scheduler-daemon -f""")
    return EXIT_PROBLEM if unit_outcome == "kept" else EXIT_OK


# -- embedded -----------------------------------------------------------------------------


def _register_embedded(sub: Any) -> None:
    p = _parser(
        sub, "embedded", "the embedded PostgreSQL (used without DATABASE_URL): stop it",
        "The embedded PostgreSQL keeps running after the daemon or the demo stops, so that the\n"
        "next start reuses it. `embedded stop` stops the one in SCHEDULER_STATE_DIR (fast\n"
        "shutdown; the data stays in SCHEDULER_STATE_DIR/pgdata).",
    )
    p.add_argument("action", choices=["stop"], help="what to do")
    p.set_defaults(handler=_guarded(embedded_command))


async def embedded_command(settings: Settings, args: argparse.Namespace) -> int:
    pgdata = settings.state_dir / "pgdata"
    pid = await asyncio.to_thread(embedded.stop_server, settings.state_dir)
    print(f"stopped the embedded PostgreSQL in {pgdata} (pid {pid})" if pid is not None
          else f"no embedded PostgreSQL is running in {pgdata}")
    return EXIT_OK
