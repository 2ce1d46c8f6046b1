"""``schedule``, ``retry`` and ``cancel``: one post, changed with the plain UPDATE a frontend
would send (the triggers notify the running daemon, which arms or disarms it)."""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from dataclasses import asdict

from ..config import Settings
from ..db.admin import Admin, ChangedPost, PostRow
from ..due import due_instant, zone
from ..errors import InvalidScheduleError
from ..models import ScheduleKey
from ._common import EXIT_OK, EXIT_PROBLEM, Command, UsageError, a_uuid, admin, err, iso, json_flag, print_json

PAST_TOLERANCE = dt.timedelta(seconds=5)


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


def _not_changed(post_id: uuid.UUID, post: PostRow | None, wanted: str) -> str:
    if post is None:
        return f"no post {post_id}"
    if post.status == "publishing":
        return f"post {post_id} is being published right now (claimed by {post.claimed_by or '?'}): {wanted}"
    if post.status == "published":
        return f"post {post_id} was already published at {iso(post.published_at)}: {wanted}"
    return f"post {post_id} is {post.status!r}: {wanted}"


def _report(
    args: argparse.Namespace, action: str, row: ChangedPost, due: dt.datetime | None, note: str | None,
    previous_error: str | None = None,
) -> None:
    if args.json:
        print_json({"action": action, "post": asdict(row), "due": due, "note": note, "previous_error": previous_error})
        return
    if due is not None:
        local = f"{row.scheduled_date}T{row.scheduled_time} {row.timezone}"
        print(f"{action}: post {row.id} ({row.platform}) is due {due.isoformat()} ({local})")
    else:
        print(f"{action}: post {row.id} ({row.platform}) is a draft now")
    if previous_error:
        print(f"  previous error: {previous_error}")
    if note:
        print(f"  note: {note}")


async def _find(ops: Admin, post_id: uuid.UUID) -> PostRow | None:
    post = await ops.post(post_id)
    if post is None:
        err(f"no post {post_id}")
    return post


async def _move(
    ops: Admin, args: argparse.Namespace, timezone: str, *, at: str | None, past_hint: str,
    statuses: tuple[str, ...], require_error: bool = False, wanted: str,
) -> tuple[ChangedPost, dt.datetime, str | None] | None:
    """Schedule the post at ``at`` (None: now) in ``timezone`` with the UPDATE a frontend
    would send, if the row is (still) in one of ``statuses``; else say why not on stderr."""
    now = await ops.now()
    date, time_of_day, due, note = local_schedule(now if at is None else parse_at(at, now), timezone)
    if at is not None and due < now - PAST_TOLERANCE:
        raise UsageError(f"{due.isoformat()} is in the past (database time {iso(now)}): {past_hint}")
    row = await ops.schedule(
        args.post_id, date, time_of_day, timezone, statuses=statuses, require_error=require_error
    )
    if row is None:
        err(_not_changed(args.post_id, await ops.post(args.post_id), wanted))
        return None
    return row, due, note


async def schedule(settings: Settings, args: argparse.Namespace) -> int:
    async with admin(settings, quiet=args.json) as ops:
        post = await _find(ops, args.post_id)
        if post is None:
            return EXIT_PROBLEM
        moved = await _move(
            ops, args, args.timezone or post.timezone or "UTC", at=args.at, statuses=("draft", "scheduled"),
            past_hint="use --at now to publish it right away", wanted="not rescheduled",
        )
    if moved is None:
        return EXIT_PROBLEM
    _report(args, "scheduled", *moved)
    return EXIT_OK


async def retry(settings: Settings, args: argparse.Namespace) -> int:
    async with admin(settings, quiet=args.json) as ops:
        post = await _find(ops, args.post_id)
        if post is None:
            return EXIT_PROBLEM
        if post.status != "draft" or post.error_message is None:
            err(f"post {args.post_id} is a draft without an error: use `schedule` to schedule it"
                if post.status == "draft" else _not_changed(args.post_id, post, "only a failed draft can be retried"))
            return EXIT_PROBLEM
        timezone = args.timezone or post.timezone or "UTC"
        try:
            zone(timezone)
        except InvalidScheduleError as exc:
            raise UsageError(f"{exc}; pass --timezone to fix the post's timezone") from None
        moved = await _move(
            ops, args, timezone, at=args.at, statuses=("draft",), require_error=True,
            past_hint="leave out --at to retry now", wanted="not retried",
        )
    if moved is None:
        return EXIT_PROBLEM
    _report(args, "retry scheduled", *moved, previous_error=post.error_message)
    return EXIT_OK


async def cancel(settings: Settings, args: argparse.Namespace) -> int:
    async with admin(settings, quiet=args.json) as ops:
        row = await ops.cancel(args.post_id)
        if row is None:
            post = await ops.post(args.post_id)
            if post is not None and post.status == "draft":
                if args.json:
                    print_json({"action": "none", "post": asdict(post)})
                else:
                    print(f"post {args.post_id} is already a draft: nothing to do")
                return EXIT_OK
            err(_not_changed(args.post_id, post, "cannot cancel it"))
            return EXIT_PROBLEM
    _report(args, "cancelled", row, None, None)
    return EXIT_OK


def _post_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("post_id", type=a_uuid, metavar="POST_ID", help="the post's id (content_posts.id)")


def _schedule_arguments(p: argparse.ArgumentParser) -> None:
    _post_argument(p)
    p.add_argument("--at", required=True, metavar="ISO8601", help="when to publish: an ISO 8601 date-time, or 'now'")
    p.add_argument("--timezone", metavar="TZ", help="IANA zone to store the time in, e.g. Europe/Paris "
                   "(default: the post's timezone)")
    json_flag(p)


def _retry_arguments(p: argparse.ArgumentParser) -> None:
    _post_argument(p)
    p.add_argument("--at", metavar="ISO8601", help="when to publish (default: now)")
    p.add_argument("--timezone", metavar="TZ", help="IANA zone to store the time in (default: the post's timezone)")
    json_flag(p)


def _cancel_arguments(p: argparse.ArgumentParser) -> None:
    _post_argument(p)
    json_flag(p)


SCHEDULE = Command(
    "schedule", "schedule (or reschedule) one post at a given time", schedule, _schedule_arguments,
    "Set a draft or scheduled post's scheduled_date, scheduled_time and timezone and make it\n"
    "'scheduled', with a plain UPDATE: the database trigger notifies the running daemon,\n"
    "which arms it. A pending retry is dropped: the new time is when it goes out.\n\n"
    "--at without an offset (2025-06-01T09:30) is a wall-clock time in --timezone; with one\n"
    "(…+02:00 or …Z) it is converted to --timezone. --timezone defaults to the post's own.\n"
    "Exit status 1 when the post does not exist or is publishing or published.",
)
RETRY = Command(
    "retry", "schedule a failed draft again, now or at --at", retry, _retry_arguments,
    "Put a draft that carries an error_message (a failed or missed publish) back to\n"
    "'scheduled', due now or at --at. Like a user reschedule this starts a fresh series of\n"
    "attempts: the trigger clears the error, the attempt count and the publish checkpoints.\n"
    "If the error says the outcome is unknown, check the platform first: the post may be out.\n"
    "Exit status 1 when the post does not exist or is not a draft with an error.",
)
CANCEL = Command(
    "cancel", "unschedule one post (back to draft)", cancel, _cancel_arguments,
    "Move a scheduled post back to 'draft' (its date and time are kept); the daemon disarms\n"
    "it. A draft is left as it is (exit 0). Exit status 1 when the post does not exist, is\n"
    "being published right now, or was published.",
)
