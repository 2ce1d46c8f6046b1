"""``status``: the posts table as the daemon sees it. ``compute`` reads, ``render_*`` print."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..clock import format_delay
from ..config import Settings
from ..db.admin import Admin, Draft, FailedAttempt, FailureCount, ScheduledSummary, StuckPost
from ..due import due_instant
from ..errors import InvalidScheduleError
from ._common import EXIT_OK, EXIT_PROBLEM, Command, admin, ago, count, iso, json_flag, positive, print_json

FAILURE_WINDOW = 24 * 3600.0
PREPARE_FAILURES_LISTED = 100


@dataclass
class Report:
    now: dt.datetime
    counts: dict[str, int]
    scheduled: int
    upcoming: list[dict[str, Any]] = field(default_factory=list)  # due within the overdue window, soonest first
    overdue: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)  # scheduled rows without a valid due instant
    stuck: list[StuckPost] = field(default_factory=list)
    failure_counts: list[FailureCount] = field(default_factory=list)
    failures: list[FailedAttempt] = field(default_factory=list)
    drafts_total: int = 0  # posts the daemon sent back to draft in the window, with a reason
    drafts: list[Draft] = field(default_factory=list)  # the newest of them
    # scheduled posts whose preparation ahead of the instant failed (prepare_error), newest first
    prepare_failed: list[dict[str, Any]] = field(default_factory=list)
    prepare_failed_total: int = 0

    @property
    def problems(self) -> int:
        return len(self.overdue) + len(self.stuck) + len(self.invalid) + self.prepare_failed_total


async def compute(ops: Admin, args: argparse.Namespace) -> Report:
    now = await ops.now()
    counts = await ops.status_counts()
    scheduled = await ops.scheduled()
    stuck = await ops.stuck(args.stuck_after)
    drafts_total, drafts = await ops.recent_drafts(FAILURE_WINDOW, args.drafts)
    prepare_total, prepare_failed = await ops.prepare_failures(PREPARE_FAILURES_LISTED)
    report = Report(
        now, counts, len(scheduled),
        stuck=[StuckPost(**{**asdict(s), "held_seconds": _rounded(s.held_seconds)}) for s in stuck],
        failure_counts=await ops.failure_counts(FAILURE_WINDOW),
        failures=await ops.recent_failures(FAILURE_WINDOW, args.failures),
        drafts_total=drafts_total, drafts=drafts, prepare_failed_total=prepare_total,
        prepare_failed=[{"id": f.id, "platform": f.platform, "error": f.prepare_error} for f in prepare_failed],
    )
    for row in scheduled:
        _place(report, row, args.overdue_after)
    report.upcoming.sort(key=lambda i: i["due"])
    report.overdue.sort(key=lambda i: i["due"])
    return report


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _place(report: Report, row: ScheduledSummary, overdue_after: float) -> None:
    item: dict[str, Any] = {"id": row.id, "platform": row.platform, "content": row.content,
                            "attempt_count": row.attempt_count, "retry": row.retry_at is not None}
    try:
        due = due_instant(row.key)
    except InvalidScheduleError as exc:
        report.invalid.append({**item, "error": str(exc)})
        return
    item.update(due=due, due_in_seconds=round((due - report.now).total_seconds(), 3))
    late = (report.now - due).total_seconds() > overdue_after
    (report.overdue if late else report.upcoming).append(item)


def render_json(report: Report, args: argparse.Namespace) -> None:
    print_json({
        "now": report.now,
        "counts": report.counts,
        "next_due": report.upcoming[: args.limit],
        "scheduled": report.scheduled,
        "overdue": report.overdue,
        "unschedulable": report.invalid,
        "stuck": [asdict(s) for s in report.stuck],
        "stuck_after_seconds": args.stuck_after,
        "failures": {
            "window_seconds": FAILURE_WINDOW,
            "counts": [asdict(c) for c in report.failure_counts],
            "recent": [asdict(f) for f in report.failures],
        },
        "drafts": {
            "window_seconds": FAILURE_WINDOW,
            "total": report.drafts_total,
            "recent": [asdict(d) for d in report.drafts],
        },
        "prepare_failed": {"total": report.prepare_failed_total, "recent": report.prepare_failed},
        "problems": report.problems,
    })


def render_text(report: Report, args: argparse.Namespace) -> None:
    counts, upcoming = report.counts, report.upcoming
    by_status = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
    print(f"Database time {iso(report.now)}. Posts: {sum(counts.values())} ({by_status})")
    print(f"\nNext due ({min(len(upcoming), args.limit)} of {len(upcoming)} scheduled):")
    for item in upcoming[: args.limit]:
        retry = f" retry {item['attempt_count']}" if item["retry"] else ""
        print(f"  {iso(item['due'])}  {ago(item['due_in_seconds']):>18}  {item['platform']:<10} "
              f"{item['id']}{retry}  {item['content']!r}")
    if not upcoming:
        print("  (nothing)")
    _render_problems(report, args)
    _render_failures(report)
    _render_drafts(report)


def _render_problems(report: Report, args: argparse.Namespace) -> None:
    if report.overdue:
        print(f"\nOVERDUE: {len(report.overdue)} scheduled post(s) more than {format_delay(args.overdue_after)} "
              "past due (is a daemon running? see `scheduler-daemon doctor`, `journalctl -u scheduler-daemon`):")
        for item in report.overdue:
            print(f"  {iso(item['due'])}  {ago(item['due_in_seconds']):>18}  {item['platform']:<10} {item['id']}")
    if report.invalid:
        print(f"\nUNSCHEDULABLE: {len(report.invalid)} scheduled post(s) without a valid due time "
              "(a running daemon moves them back to draft):")
        for item in report.invalid:
            print(f"  {item['platform']:<10} {item['id']}  {item['error']}")
    if report.prepare_failed_total:
        print(f"\nPREPARATION FAILED: {report.prepare_failed_total} scheduled post(s) whose media or request "
              "could not be prepared ahead of the instant (the daemon tries again until the instant, then "
              "publishes as usual; fix the post before then):")
        for item in report.prepare_failed:
            print(f"  {item['platform']:<10} {item['id']}  {item['error'][:200]}")
    if report.stuck:
        print(f"\nSTUCK: {len(report.stuck)} post(s) in 'publishing' for more than {format_delay(args.stuck_after)} "
              "(a running daemon resolves a claim whose holder is gone after SCHEDULER_RECOVERY_AFTER_SECONDS; "
              "if these stay, is the holder hung, or is no daemon running?):")
        for s in report.stuck:
            held = "?" if s.held_seconds is None else format_delay(s.held_seconds)
            print(f"  {s.platform:<10} {s.id}  claimed by {s.claimed_by or '?'} at {iso(s.claimed_at)} ({held})")


def _render_failures(report: Report) -> None:
    total_failed = sum(c.attempts for c in report.failure_counts)
    summary = ", ".join(f"{c.platform}/{c.outcome} {c.attempts}" for c in report.failure_counts)
    print(f"\nFailed attempts in the last 24 h: {total_failed}" + (f" ({summary})" if summary else ""))
    for f in report.failures:
        error = (f.error_message or "").replace("\n", " ")
        print(f"  {iso(f.finished_at)}  {f.platform:<10} {f.outcome:<8} {f.post_id} "
              f"attempt {f.attempt}: {error[:160]}")


def _render_drafts(report: Report) -> None:
    listed = len(report.drafts)
    shown = "" if report.drafts_total == listed else f" (the newest {listed}; --drafts N lists more)"
    print(f"\nSent back to draft in the last 24 h: {report.drafts_total}{shown}")
    for d in report.drafts:
        reason = d.error_message.replace("\n", " ")
        print(f"  {iso(d.updated_at)}  {d.platform:<10} {d.id}  after {d.attempt_count} attempt(s): {reason[:200]}")


async def status(settings: Settings, args: argparse.Namespace) -> int:
    """Counts by status, upcoming, overdue, unschedulable, stuck and failed posts."""
    async with admin(settings, quiet=args.json) as ops:
        report = await compute(ops, args)
    (render_json if args.json else render_text)(report, args)
    return EXIT_PROBLEM if report.problems else EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=count, default=10, help="how many upcoming posts to list (default 10)")
    p.add_argument(
        "--overdue-after", type=positive, default=60.0, metavar="SECONDS",
        help="a scheduled post this far past its due time counts as overdue (default 60)",
    )
    p.add_argument(
        "--stuck-after", type=positive, default=900.0, metavar="SECONDS",
        help="a post in 'publishing' for longer than this counts as stuck (default 900)",
    )
    p.add_argument(
        "--failures", type=count, default=20, metavar="N", help="how many recent failed attempts to list (default 20)"
    )
    p.add_argument(
        "--drafts", type=count, default=100, metavar="N",
        help="how many of the drafts the daemon produced in the last 24 h to list (default 100)",
    )
    json_flag(p)


STATUS = Command(
    "status", "posts by status, next due, overdue, recent failures, stuck publishes", status, _arguments,
    "Summarise the posts table as the daemon sees it: counts by status, the next posts due,\n"
    "scheduled posts already past their due time (overdue: no daemon is arming them),\n"
    "failed attempts in the last 24 hours (publish_attempts), every post the daemon sent\n"
    "back to draft in that time with its reason (rejected ones included), and posts held in\n"
    "'publishing' for too long (a daemon that died mid-publish), and scheduled posts whose\n"
    "preparation ahead of the instant failed (prepare_error: media too big, unreachable, …).\n\n"
    "Exit status 1 when a post is overdue or stuck, a scheduled row has no valid due time, or\n"
    "a scheduled post's preparation failed.",
)
