"""The metric hooks, the address parser, the event-loop watch and the health document:
pure, no server."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from scheduler_daemon.config import Settings
from scheduler_daemon.observability.health import LoopWatch, daemon_health
from scheduler_daemon.observability.metrics import Metrics, PrometheusMetrics
from scheduler_daemon.observability.server import parse_address


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


# -- the hooks ----------------------------------------------------------------------------


def test_prometheus_metrics_implements_every_hook() -> None:
    hooks = {n for n in vars(Metrics) if not n.startswith("_")}
    assert hooks == {"armed", "published", "failed", "listener_reconnected", "db_round_trip"}
    assert all(n in vars(PrometheusMetrics) for n in hooks)


def test_hooks_update_their_metrics() -> None:
    m = PrometheusMetrics()
    assert math.isnan(value(m, "scheduler_next_due_seconds") or 0.0), "NaN until something is armed"
    m.armed(3, 12.5)
    m.published("x", 0.0004)
    m.published("x", 0.003)
    m.published("log", -0.001)  # early by a hair: counted as on time
    m.failed("x", "rate_limited")
    m.failed("x", "rate_limited")
    m.failed("slack", "auth")
    m.listener_reconnected()
    m.db_round_trip(0.0015)

    assert value(m, "scheduler_armed_posts") == 3
    assert value(m, "scheduler_next_due_seconds") == 12.5
    assert value(m, "scheduler_published_total", platform="x") == 2
    assert value(m, "scheduler_failed_total", platform="x", reason="rate_limited") == 2
    assert value(m, "scheduler_failed_total", platform="slack", reason="auth") == 1
    assert value(m, "scheduler_publish_lateness_seconds_bucket", platform="x", le="0.001") == 1
    assert value(m, "scheduler_publish_lateness_seconds_bucket", platform="x", le="0.005") == 2
    assert value(m, "scheduler_publish_lateness_seconds_bucket", platform="log", le="0.001") == 1
    assert value(m, "scheduler_publish_lateness_seconds_sum", platform="log") == 0
    assert value(m, "scheduler_listener_reconnects_total") == 1
    assert value(m, "scheduler_db_round_trip_seconds_count") == 1
    assert value(m, "scheduler_db_round_trip_seconds_bucket", le="0.002") == 1

    m.armed(0, None)
    assert value(m, "scheduler_armed_posts") == 0
    assert math.isnan(value(m, "scheduler_next_due_seconds") or 0.0)


def test_each_instance_has_its_own_registry() -> None:
    a, b = PrometheusMetrics(), PrometheusMetrics()
    a.listener_reconnected()
    assert value(a, "scheduler_listener_reconnects_total") == 1
    assert value(b, "scheduler_listener_reconnects_total") == 0
    shared = CollectorRegistry()
    assert PrometheusMetrics(shared).registry is shared


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)), (":9464", ("0.0.0.0", 9464)),
     ("localhost:0", ("localhost", 0))],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["9464", "host:", "host:http", "host:70000"])
def test_parse_address_rejects(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)


# -- loop liveness ------------------------------------------------------------------------


async def test_loop_watch_sees_a_blocked_loop() -> None:
    with LoopWatch(interval=0.01, max_lag=0.1) as watch:
        assert watch.alive()
        time.sleep(0.3)  # noqa: ASYNC251 - the event loop is blocked: what a stuck daemon looks like
        assert watch.lag() >= 0.2 and not watch.alive()
    assert not watch.alive(), "a stopped watch reports the loop as not watched"


async def test_daemon_health_goes_stale_without_heartbeats(settings: Settings) -> None:
    class Listener:
        connected = True
        last_heartbeat: float | None = None
        reconnects = 2

    class FakeDaemon:
        def __init__(self) -> None:
            self.settings = replace(settings, heartbeat_seconds=1.0, heartbeat_timeout_seconds=0.5)
            self.listener = Listener()
            self.started = asyncio.Event()
            self.metrics = PrometheusMetrics()

    daemon = FakeDaemon()
    daemon.started.set()
    loop = asyncio.get_running_loop()
    with LoopWatch() as watch:
        health = daemon_health(daemon, watch)
        assert health()["healthy"] is False, "no heartbeat yet"
        daemon.listener.last_heartbeat = loop.time()
        assert health()["healthy"] is True and health()["listener_reconnects"] == 2
        daemon.listener.last_heartbeat = loop.time() - 2.6  # older than 2 intervals + timeout
        doc = health()
        assert doc["healthy"] is False and doc["last_heartbeat_age_seconds"] >= 2.6
        assert doc["heartbeat_stale_after_seconds"] == 2.5
        daemon.listener.last_heartbeat = loop.time()
        daemon.listener.connected = False
        assert health()["healthy"] is False
