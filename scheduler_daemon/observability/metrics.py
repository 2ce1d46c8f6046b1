"""The hooks the daemon reports through, and their Prometheus implementation.

``Metrics`` is the no-op base the daemon runs with by default (no
``SCHEDULER_METRICS_ADDRESS``). ``PrometheusMetrics`` implements every hook on its own
``CollectorRegistry`` (nothing global, so several daemons can live in one process);
``server.serve`` exposes it.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

# Lateness is the point of the daemon: fine buckets from 1 ms to 10 s.
LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Every hook the daemon calls; the base class records nothing."""

    def armed(self, count: int, next_due_in: float | None) -> None: ...

    def published(self, platform: str, lateness: float) -> None: ...

    def failed(self, platform: str, reason: str) -> None: ...

    def listener_reconnected(self) -> None: ...

    def db_round_trip(self, seconds: float) -> None: ...


class PrometheusMetrics(Metrics):
    """The daemon's hooks as Prometheus metrics on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.armed_posts = Gauge("scheduler_armed_posts", "Scheduled posts armed with a timer.", registry=r)
        self.next_due_seconds = Gauge(
            "scheduler_next_due_seconds",
            "Seconds until the earliest armed post is due (negative when late; NaN when nothing is armed).",
            registry=r,
        )
        self.next_due_seconds.set(math.nan)
        self.published_total = Counter(
            "scheduler_published", "Posts published, by platform.", ["platform"], registry=r
        )
        self.failed_total = Counter(
            "scheduler_failed",
            "Publish attempts that did not publish, by platform and reason (retries included).",
            ["platform", "reason"],
            registry=r,
        )
        self.lateness_seconds = Histogram(
            "scheduler_publish_lateness_seconds",
            "How late a published post's attempt started after its due instant.",
            ["platform"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.listener_reconnects_total = Counter(
            "scheduler_listener_reconnects", "Times the LISTEN connection was re-established.", registry=r
        )
        self.db_round_trip_seconds = Histogram(
            "scheduler_db_round_trip_seconds",
            "Round trip of the listener's heartbeat query (SELECT clock_timestamp()).",
            buckets=ROUND_TRIP_BUCKETS,
            registry=r,
        )

    def armed(self, count: int, next_due_in: float | None) -> None:
        self.armed_posts.set(count)
        self.next_due_seconds.set(math.nan if next_due_in is None else next_due_in)

    def published(self, platform: str, lateness: float) -> None:
        self.published_total.labels(platform).inc()
        self.lateness_seconds.labels(platform).observe(max(0.0, lateness))

    def failed(self, platform: str, reason: str) -> None:
        self.failed_total.labels(platform, reason).inc()

    def listener_reconnected(self) -> None:
        self.listener_reconnects_total.inc()

    def db_round_trip(self, seconds: float) -> None:
        self.db_round_trip_seconds.observe(max(0.0, seconds))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
