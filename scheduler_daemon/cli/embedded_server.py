"""``embedded stop``: stop the embedded PostgreSQL that runs without DATABASE_URL."""

from __future__ import annotations

import argparse
import asyncio

from ..config import Settings
from ..db import embedded
from ._common import EXIT_OK, Command


async def embedded_command(settings: Settings, args: argparse.Namespace) -> int:
    pgdata = settings.state_dir / "pgdata"
    pid = await asyncio.to_thread(embedded.stop_server, settings.state_dir)
    print(f"stopped the embedded PostgreSQL in {pgdata} (pid {pid})" if pid is not None
          else f"no embedded PostgreSQL is running in {pgdata}")
    return EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["stop"], help="what to do")


EMBEDDED = Command(
    "embedded", "the embedded PostgreSQL (used without DATABASE_URL): stop it", embedded_command, _arguments,
    "The embedded PostgreSQL keeps running after the daemon or the demo stops, so that the\n"
    "next start reuses it. `embedded stop` stops the one in SCHEDULER_STATE_DIR (fast\n"
    "shutdown; the data stays in SCHEDULER_STATE_DIR/pgdata).",
)
