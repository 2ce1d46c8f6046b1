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
    # issue 16: bursts at platform latency, replicas, 10M rows, in-flight cost, profile
    platform_latency_ms: float = 300.0  # median answer (lognormal, sigma 0.5)
    realistic_accounts: int = 1000
    realistic_per_account: int = 5
    media_upload_ms: float = 300.0
    media_container_ms: float = 2000.0
    media_poll_interval_s: float | None = None  # None: the daemon's default
    media_paced_accounts: int = 5  # the media burst again with the shipped Instagram pacing
    media_paced_per_account: int = 5
    media_prepare_lead_s: float = 150.0  # inserted this long ahead: inside the prepare window (300 s)
    replica_posts: int = 10_000
    replica_repeats: int = 2
    schedule_huge: int = 10_000_000
    schedule_huge_days: int = 365
    inflight: tuple[int, ...] = (1000, 5000, 10_000)
    protocol_requests: int = 5000
    profile_posts: int = 5000
    linear_chars: int = 10_000  # measured at this and 10× this length

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes()
SMOKE = Sizes(
    lateness_posts=20,
    lateness_window_s=1.5,
    lead_s=0.6,
    burst_posts=100,
    schedule_big=10_000,
    schedule_small=2_000,
    registration_inserts=50,
    reschedule_rows=200,
    reschedule_rate=2000,
    reschedule_batch=50,
    reschedule_seconds=1.0,
    idle_posts=100,
    idle_seconds=2.0,
    roundtrip_spread_posts=20,
    roundtrip_burst_posts=100,
    platform_latency_ms=20.0,
    realistic_accounts=20,
    realistic_per_account=2,
    media_upload_ms=20.0,
    media_container_ms=100.0,
    media_poll_interval_s=0.05,
    media_paced_accounts=2,
    media_paced_per_account=2,
    media_prepare_lead_s=6.0,
    replica_posts=200,
    replica_repeats=1,
    schedule_huge=30_000,
    inflight=(100,),
    protocol_requests=100,
    profile_posts=300,
    linear_chars=1_000,
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
