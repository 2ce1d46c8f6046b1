"""``run``, ``migrate`` and ``demo``: the daemon itself, and its database."""

from __future__ import annotations

import argparse
import asyncio
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import structlog

from ..config import Settings
from ..daemon import Daemon
from ..db import demo as demo_seed
from ..db import embedded
from ..db import migrate as migrations
from ..errors import ConfigError
from ..observability.metrics import Metrics, PrometheusMetrics
from ..observability.server import serve_daemon
from ..platforms import versions
from ..systemd import Notifier
from ._common import EXIT_OK, Command, resolve_dsn

logger = structlog.get_logger("scheduler_daemon.cli")


def _log_embedded(state_dir: Path) -> None:
    logger.info("no DATABASE_URL: using the embedded PostgreSQL", state_dir=str(state_dir))


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


def _warn_of_sunsets(settings: Settings) -> None:
    """A warning per pinned API version near its sunset; ``ConfigError`` past one."""
    for warning in versions.startup_warnings(settings.platforms):
        logger.warning("API version sunsets soon", detail=warning)


async def serve(settings: Settings, dsn: str) -> int:
    """Run the daemon until SIGTERM/SIGINT (SIGHUP resyncs), with /metrics when configured."""
    _warn_of_sunsets(settings)
    notifier = Notifier(
        settings.notify_socket, watchdog_usec=settings.watchdog_usec, watchdog_pid=settings.watchdog_pid
    )
    metrics = PrometheusMetrics() if settings.metrics_address else Metrics()
    daemon = Daemon(settings, dsn, notifier=notifier, metrics=metrics)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, daemon.stop)
    loop.add_signal_handler(signal.SIGINT, daemon.stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.resync)
    async with AsyncExitStack() as stack:
        if settings.metrics_address:
            # Up before the daemon: /healthz answers 503 until it is ready.
            server = await stack.enter_async_context(serve_daemon(daemon, settings.metrics_address))
            logger.info("serving /metrics and /healthz", url=server.url)
        await daemon.run()
    return EXIT_OK


async def run(settings: Settings, args: argparse.Namespace) -> int:
    dsn, is_embedded = await resolve_dsn(settings, announce=_log_embedded)
    if is_embedded or args.migrate:
        await _apply_migrations(dsn)
    else:
        await _check_migrations(dsn)
    return await serve(settings, dsn)


async def migrate(settings: Settings, args: argparse.Namespace) -> int:
    dsn, _ = await resolve_dsn(settings, announce=_log_embedded)
    applied = await _apply_migrations(dsn)
    print(f"applied: {', '.join(applied)}" if applied else "up to date: nothing to apply")
    return EXIT_OK


async def demo(settings: Settings, args: argparse.Namespace) -> int:
    dsn, is_embedded = await resolve_dsn(settings, announce=_log_embedded)
    await _apply_migrations(dsn)
    await demo_seed.seed(dsn, max(1, args.posts))
    print(demo_help(dsn, is_embedded), flush=True)
    return await serve(settings, dsn)


def demo_help(dsn: str, is_embedded: bool) -> str:
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


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--migrate", action="store_true",
        help="apply pending migrations first (always done on the embedded database)",
    )


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--posts", type=int, default=3, help="how many demo posts to seed (default 3)")


RUN = Command("run", "serve until SIGTERM: arm scheduled posts, publish them on time", run, _run_arguments)
MIGRATE = Command("migrate", "apply pending migrations (each once, in order) and exit", migrate)
DEMO = Command("demo", "seed a few 'log' posts due in seconds, publish them, keep running", demo, _demo_arguments)
