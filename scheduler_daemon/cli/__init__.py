"""The ``scheduler-daemon`` command: one table of subcommands (``COMMANDS``).

Exit codes: 0 done, 1 runtime failure (e.g. database unreachable) or a problem found, 2
bad configuration or usage. Each subcommand lives in its own module as a ``Command``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from .. import __version__
from ..config import Settings
from ..db import embedded
from ..db.errors import DB_ERRORS
from ..errors import ConfigError
from ..logs import configure, fatal, install_excepthook
from ..redact import SECRETS
from . import connections, doctor, embedded_server, install, posts, run, status
from ._common import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, Command, Handler

logger = structlog.get_logger("scheduler_daemon.cli")

COMMANDS: tuple[Command, ...] = (
    run.RUN,
    run.MIGRATE,
    run.DEMO,
    status.STATUS,
    doctor.DOCTOR,
    posts.SCHEDULE,
    posts.CANCEL,
    posts.RETRY,
    connections.CONNECTIONS,
    install.INSTALL_SERVICE,
    embedded_server.EMBEDDED,
)
# Commands whose log is their output (the journal under systemd). The others print a
# result on stdout (--json for scripts), so their log goes to stderr.
SERVING = ("run", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scheduler-daemon",
        description="Publishes scheduled posts from PostgreSQL at their exact instant. "
        "Settings come from the environment (see README); without DATABASE_URL an embedded "
        "PostgreSQL is started.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install_excepthook()
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fatal(f"configuration error: {exc}")
        return EXIT_USAGE
    configure(settings.log_level, settings.log_format, None if args.command in SERVING else sys.stderr)
    SECRETS.add(*settings.secret_values())
    embedded.quiet_platformdirs()
    handler: Handler = args.handler
    try:
        return _event_loop_runner()(handler(settings, args))
    except KeyboardInterrupt:
        return EXIT_OK
    except DB_ERRORS as exc:
        fatal(database_failure(settings, exc))
        return EXIT_PROBLEM
    except ConfigError as exc:
        fatal(f"configuration error: {exc}")
        return EXIT_USAGE


def database_failure(settings: Settings, exc: BaseException) -> str:
    """Why the database is out of reach, naming where its address came from."""
    if settings.database_url:
        host, ports = doctor.dsn_endpoint(settings.database_url)
        where = f"DATABASE_URL ({host}:{','.join(map(str, ports))})"
    else:
        where = f"the embedded PostgreSQL (SCHEDULER_STATE_DIR={settings.state_dir})"
    return f"database unavailable through {where}: {type(exc).__name__}: {exc}"


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop when the ``speed`` extra is installed (it halves the lateness tail,
    bench/RESULTS.md), asyncio otherwise."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.run
    runner: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    return runner


__all__ = ["COMMANDS", "build_parser", "main"]
