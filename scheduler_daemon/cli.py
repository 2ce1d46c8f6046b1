"""The ``scheduler-daemon`` command: run, migrate, demo.

Exit codes: 0 done, 1 runtime failure (e.g. database unreachable), 2 bad configuration
or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from . import __version__, commands
from .commands import Handler
from .config import Settings
from .daemon import Daemon
from .db import DB_ERRORS, demo, embedded
from .db import migrate as migrations
from .errors import ConfigError
from .logs import SECRETS, configure, fatal, install_excepthook
from .metrics import Metrics
from .metrics_http import PrometheusMetrics, serve_daemon
from .systemd import Notifier

logger = structlog.get_logger("scheduler_daemon.cli")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
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
    run = sub.add_parser("run", help="serve until SIGTERM: arm scheduled posts, publish them on time")
    run.add_argument(
        "--migrate", action="store_true",
        help="apply pending migrations first (always done on the embedded database)",
    )
    run.set_defaults(handler=_run)
    sub.add_parser("migrate", help="apply pending migrations (each once, in order) and exit").set_defaults(
        handler=_migrate
    )
    demo = sub.add_parser("demo", help="seed a few 'log' posts due in seconds, publish them, keep running")
    demo.add_argument("--posts", type=int, default=3, help="how many demo posts to seed (default 3)")
    demo.set_defaults(handler=_demo)
    commands.register(sub)  # the operator commands
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    install_excepthook()
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        fatal(f"configuration error: {exc}")
        return EXIT_CONFIG
    configure(settings.log_level, settings.log_format, None if args.command in SERVING else sys.stderr)
    SECRETS.add(*settings.secret_values())
    embedded.quiet_platformdirs()
    command: Handler = args.handler
    try:
        return _event_loop_runner()(_call(command, settings, args))
    except KeyboardInterrupt:
        return EXIT_OK
    except DB_ERRORS as exc:
        fatal(database_failure(settings, exc))
        return EXIT_FAILURE
    except ConfigError as exc:
        fatal(f"configuration error: {exc}")
        return EXIT_CONFIG


def database_failure(settings: Settings, exc: BaseException) -> str:
    """Why the database is out of reach, naming where its address came from."""
    if settings.database_url:
        host, ports = commands.dsn_endpoint(settings.database_url)
        where = f"DATABASE_URL ({host}:{','.join(map(str, ports))})"
    else:
        where = f"the embedded PostgreSQL (SCHEDULER_STATE_DIR={settings.state_dir})"
    return f"database unavailable through {where}: {type(exc).__name__}: {exc}"


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop when the ``speed`` extra is installed (it halves the lateness tail,
    bench/RESULTS.md), asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


async def _call(command: Handler, settings: Settings, args: argparse.Namespace) -> int:
    return await command(settings, args)


async def _dsn(settings: Settings) -> tuple[str, bool]:
    """The database to use and whether it is the embedded one."""
    if settings.database_url:
        SECRETS.add_url(settings.database_url)
        return settings.database_url, False
    logger.info("no DATABASE_URL: using the embedded PostgreSQL", state_dir=str(settings.state_dir))
    return await embedded.embedded_dsn(settings.state_dir), True


async def _apply_migrations(dsn: str) -> list[str]:
    applied = await migrations.apply(dsn)
    if applied:
        logger.info("migrations applied", names=applied)
    return applied


async def _check_migrations(dsn: str) -> None:
    lacking = await migrations.missing(dsn)
    if lacking:
        raise ConfigError(
            f"the database lacks migrations {', '.join(lacking)}: run `scheduler-daemon migrate` "
            "(or start with `run --migrate`)"
        )


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    dsn, _ = await _dsn(settings)
    applied = await _apply_migrations(dsn)
    print(f"applied: {', '.join(applied)}" if applied else "up to date: nothing to apply")
    return EXIT_OK


async def _serve(settings: Settings, dsn: str) -> int:
    notifier = Notifier(settings.notify_socket, watchdog_usec=settings.watchdog_usec, watchdog_pid=settings.watchdog_pid)
    metrics = PrometheusMetrics() if settings.metrics_address else Metrics()
    daemon = Daemon(settings, dsn, notifier=notifier, metrics=metrics)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, daemon.stop)
    loop.add_signal_handler(signal.SIGINT, daemon.stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.resync)
    async with contextlib.AsyncExitStack() as stack:
        if settings.metrics_address:
            # Up before the daemon: /healthz answers 503 until it is ready.
            server = await stack.enter_async_context(serve_daemon(daemon, settings.metrics_address))
            logger.info("serving /metrics and /healthz", url=server.url)
        await daemon.run()
    return EXIT_OK


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    dsn, is_embedded = await _dsn(settings)
    if is_embedded or args.migrate:
        await _apply_migrations(dsn)
    else:
        await _check_migrations(dsn)
    return await _serve(settings, dsn)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    dsn, is_embedded = await _dsn(settings)
    await _apply_migrations(dsn)
    await demo.seed(dsn, max(1, args.posts))
    print(_demo_help(dsn, is_embedded), flush=True)
    return await _serve(settings, dsn)


def _demo_help(dsn: str, is_embedded: bool) -> str:
    connect = f'{embedded.psql_path()} "{dsn}"' if is_embedded else 'psql "$DATABASE_URL"'
    return f"""
Demo: {'embedded PostgreSQL' if is_embedded else 'DATABASE_URL'}; posts due in the next seconds are being armed.
Watch the 'published' lines below (lateness_ms is how late each went out). Ctrl-C stops.

Schedule more from another terminal:
  {connect}
  INSERT INTO content_posts (campaign_id, platform, content, status, scheduled_date, scheduled_time)
  SELECT id, 'log', 'hello from psql', 'scheduled', (now() AT TIME ZONE 'UTC')::date,
         ((now() + interval '5 seconds') AT TIME ZONE 'UTC')::time
    FROM content_campaigns WHERE name = 'demo' LIMIT 1;
{_embedded_note(is_embedded)}"""


def _embedded_note(is_embedded: bool) -> str:
    if not is_embedded:
        return ""
    return ("\nThe embedded PostgreSQL keeps running after Ctrl-C (the next start reuses it);\n"
            "`scheduler-daemon embedded stop` stops it.\n")


if __name__ == "__main__":
    sys.exit(main())
