"""``connections``: list platform connections (never their tokens); ``--test`` checks each
one against what its platform declares it needs (``platforms.registry.FACTS``)."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import asdict
from typing import Any

from ..clock import format_delay
from ..config import Settings
from ..db.admin import ConnectionSummary
from ..platforms.registry import FACTS
from ._common import EXIT_OK, EXIT_PROBLEM, Command, a_uuid, admin, expiry_days_flag, iso, json_flag, print_json


def problems(row: ConnectionSummary, now: dt.datetime, expiry: dt.timedelta) -> tuple[list[str], list[str]]:
    """(failures, warnings) of one connection, from what its platform declares."""
    fails: list[str] = []
    warns: list[str] = []
    facts = FACTS.get(row.platform)
    if facts is None:
        fails.append(f"unknown platform {row.platform!r} (supported: {', '.join(sorted(FACTS))})")
    if row.needs_reconnect:
        fails.append("the platform rejected its token: the user must reconnect")
    needs_token = facts is None or not (
        facts.tokenless or (facts.token_in_metadata is not None and facts.token_in_metadata in row.metadata_keys)
    )
    if needs_token and not row.has_access_token:
        fails.append("no access token")
    expires = row.token_expires_at
    if expires is not None and row.has_access_token:
        if expires <= now:
            (warns if row.has_refresh_token else fails).append(
                f"token expired {format_delay((now - expires).total_seconds())} ago"
                + (" (the daemon will try its refresh token)" if row.has_refresh_token
                   else " and there is no refresh token")
            )
        elif expires - now < expiry:
            warns.append(f"token expires in {format_delay((expires - now).total_seconds())}")
    return fails, warns


async def connections(settings: Settings, args: argparse.Namespace) -> int:
    async with admin(settings, quiet=args.json) as ops:
        listed = await ops.connections(args.platform, args.user)
        now = await ops.now()
    rows: list[dict[str, Any]] = [asdict(row) for row in listed]
    failed = 0
    if args.test:
        for summary, row in zip(listed, rows, strict=True):
            fails, warns = problems(summary, now, dt.timedelta(days=args.expiry_days))
            row["check"] = "fail" if fails else "warn" if warns else "ok"
            row["problems"] = fails + warns
            failed += bool(fails)
    if args.json:
        print_json({"connections": rows, "tested": args.test, "failed": failed})
    else:
        _render(rows, args)
    return EXIT_PROBLEM if failed else EXIT_OK


def _render(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if not rows:
        print("no platform connections" + (" match" if args.platform or args.user else ""))
    for row in rows:
        expiry = "never" if row["token_expires_at"] is None else iso(row["token_expires_at"])
        token = "token set" if row["has_access_token"] else "NO TOKEN"
        line = (f"{row['id']}  {row['platform']:<10} user {row['user_id']}  account {row['account_id'] or '-'}  "
                f"{token}, expires {expiry}{'  NEEDS RECONNECT' if row['needs_reconnect'] else ''}")
        print(f"{row['check']:<4}  {line}" if args.test else line)
        for problem in row.get("problems", []):
            print(f"        {problem}")
    if args.test:
        failed = sum(row["check"] == "fail" for row in rows)
        print(f"\n{len(rows)} connection(s), {failed} failed")


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", help="only this platform")
    p.add_argument("--user", type=a_uuid, metavar="USER_ID", help="only this user's connections")
    p.add_argument("--test", action="store_true", help="check each connection (exit status 1 if any fails)")
    expiry_days_flag(p, when="with --test, ")
    json_flag(p)


CONNECTIONS = Command(
    "connections", "list platform connections (never their tokens); --test checks them", connections, _arguments,
    "List platform_connections: id, user, platform, account, token expiry, whether the\n"
    "platform rejected the token (needs_reconnect). Tokens are never printed, only whether\n"
    "one is set.\n\n"
    "--test checks each one: a known platform, not rejected, a token where the platform\n"
    "needs one, and not expired without a refresh token. Exit status 1 when any\n"
    "connection fails.",
)
