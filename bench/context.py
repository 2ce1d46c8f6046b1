"""Sizes of a run (full or smoke) and what every scenario is handed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .pg import BenchDatabases


@dataclass(frozen=True)
class Sizes:
    lateness_posts: int = 300
    lateness_window_s: float = 30.0
    lead_s: float = 2.0  # posts are inserted this long before the first is due
    burst_posts: int = 5000
    schedule_big: int = 1_000_000
    schedule_small: int = 100_000
    registration_inserts: int = 1000
    reschedule_rows: int = 1000
    reschedule_rate: int = 10_000  # rows per second
    reschedule_batch: int = 100  # rows per UPDATE
    reschedule_seconds: float = 10.0
    idle_posts: int = 1000
    idle_seconds: float = 60.0
    roundtrip_spread_posts: int = 200
    roundtrip_spread_gap_s: float = 0.025
    roundtrip_burst_posts: int = 1000

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes()
SMOKE = Sizes(
    lateness_posts=20,
    lateness_window_s=2.0,
    lead_s=1.5,
    burst_posts=200,
    schedule_big=10_000,
    schedule_small=2_000,
    registration_inserts=50,
    reschedule_rows=200,
    reschedule_rate=2000,
    reschedule_batch=50,
    reschedule_seconds=1.0,
    idle_posts=100,
    idle_seconds=3.0,
    roundtrip_spread_posts=20,
    roundtrip_burst_posts=100,
)


@dataclass
class Context:
    server_url: str
    databases: BenchDatabases
    sizes: Sizes
    smoke: bool
    work_dir: Path

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A fresh migrated database for one scenario, dropped afterwards."""
        url = await self.databases.create()
        try:
            yield url
        finally:
            await self.databases.drop(url)
