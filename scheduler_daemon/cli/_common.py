"""What every subcommand shares: the ``Command`` table entry, exit codes, argument types,
the database URL, JSON output, and the guard that turns errors into an exit status.

Exit codes: 0 all is well, 1 a problem was found or the action failed (e.g. the
database is unreachable), 2 bad usage or configuration. Results go to stdout (``--json``
for scripts), diagnostics to stderr. No command ever prints a token.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import UTC, format_delay
from ..config import Settings
from ..db import embedded
from ..db.admin import Admin, open_admin
from ..db.errors import DB_ERRORS
from ..redact import SECRETS

Handler = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
EXIT_CODES = "Exit status: 0 ok, 1 problem found or action failed, 2 bad usage or configuration."


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, help, arguments and handler.

    An operator command (``description`` set) gets the exit-code epilog and ``guarded``
    error handling; ``run``, ``migrate`` and ``demo`` leave errors to ``main``.
    """

    name: str
    help: str
    handler: Handler
    arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None
    description: str | None = None

    def add_to(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        if self.description is None:
            parser = sub.add_parser(self.name, help=self.help)
            parser.set_defaults(handler=self.handler)
        else:
            parser = sub.add_parser(
                self.name, help=self.help, description=self.description, epilog=EXIT_CODES,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            parser.set_defaults(handler=guarded(self.handler))
        self.arguments(parser)


class UsageError(Exception):
    """Bad input from the command line: printed, exit status 2."""


class SchemaMissing(Exception):
    """The database lacks migrations: printed, exit status 2."""


# -- argument types -------------------------------------------------------------------------


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def expiry_days_flag(parser: argparse.ArgumentParser, *, when: str = "") -> None:
    parser.add_argument("--expiry-days", type=positive, default=7.0, metavar="DAYS",
                        help=f"{when}warn about tokens expiring within this many days (default 7)")


def a_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a post id (a UUID)") from None


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


# -- output ---------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def print_json(data: object) -> None:
    print(json.dumps(data, default=_json_default, indent=2, sort_keys=False))


def err(message: str) -> None:
    print(f"scheduler-daemon: {SECRETS.scrub(message)}", file=sys.stderr)


def ago(seconds: float) -> str:
    return f"in {format_delay(seconds)}" if seconds >= 0 else f"{format_delay(seconds)} ago"


def iso(value: dt.datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


# -- the database ---------------------------------------------------------------------------


async def resolve_dsn(
    settings: Settings, *, announce: Callable[[Path], None] | None = None
) -> tuple[str, bool]:
    """DATABASE_URL, or the embedded PostgreSQL (``announce`` says so); and whether it is the embedded one."""
    if settings.database_url:
        SECRETS.add_url(settings.database_url)
        return settings.database_url, False
    if announce is not None:
        announce(settings.state_dir)
    dsn = await embedded.embedded_dsn(settings.state_dir)
    SECRETS.add_url(dsn)
    return dsn, True


def note_embedded(state_dir: Path) -> None:
    print(f"(no DATABASE_URL: using the embedded PostgreSQL in {state_dir})", file=sys.stderr)


@asynccontextmanager
async def admin(settings: Settings, *, timeout: float = 10.0, quiet: bool = False) -> AsyncIterator[Admin]:
    """A connection for one command, after checking the schema is current."""
    dsn, _ = await resolve_dsn(settings, announce=None if quiet else note_embedded)
    async with open_admin(dsn, timeout=timeout) as ops:
        missing = await ops.pending_migrations()
        if missing:
            raise SchemaMissing(f"the database lacks migrations {', '.join(missing)}: run `scheduler-daemon migrate`")
        yield ops


def guarded(handler: Handler) -> Handler:
    """Turn database and usage errors into a message on stderr and an exit status."""

    async def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return await handler(settings, args)
        except (UsageError, SchemaMissing) as exc:
            err(str(exc))
            return EXIT_USAGE
        except DB_ERRORS as exc:
            err(f"database error: {type(exc).__name__}: {exc}")
            return EXIT_PROBLEM

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run
