"""Prometheus metrics and /healthz: the hooks, a scrape over real HTTP, and a real daemon
publishing while it is being scraped."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from helpers import Watcher, insert_post, make_user, soon
from scheduler_daemon.config import Settings
from scheduler_daemon.daemon import Daemon
from scheduler_daemon.observability.metrics import Metrics
from scheduler_daemon.observability.health import LoopWatch, daemon_health
from scheduler_daemon.observability.metrics import PrometheusMetrics
from scheduler_daemon.observability.server import parse_address, serve, serve_daemon


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


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


# -- the HTTP server ----------------------------------------------------------------------


class Health:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def __call__(self) -> dict[str, Any]:
        return self.document


@pytest.fixture
async def served() -> AsyncIterator[tuple[PrometheusMetrics, Health, httpx.AsyncClient]]:
    metrics = PrometheusMetrics()
    health = Health({"healthy": True, "listener_connected": True})
    async with serve(metrics, health, "127.0.0.1:0") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            yield metrics, health, client


async def test_scrape_over_http(served: tuple[PrometheusMetrics, Health, httpx.AsyncClient]) -> None:
    metrics, _, client = served
    metrics.published("webhook", 0.012)
    metrics.failed("webhook", "transient")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    got = samples(response.text)
    assert got[("scheduler_published_total", (("platform", "webhook"),))] == 1
    assert got[("scheduler_failed_total", (("platform", "webhook"), ("reason", "transient")))] == 1
    assert got[("scheduler_publish_lateness_seconds_bucket", (("le", "0.01"), ("platform", "webhook")))] == 0
    assert got[("scheduler_publish_lateness_seconds_bucket", (("le", "0.025"), ("platform", "webhook")))] == 1
    assert ("scheduler_armed_posts", ()) in got and ("scheduler_listener_reconnects_total", ()) in got
    assert ("scheduler_db_round_trip_seconds_count", ()) in got


async def test_healthz_is_200_when_healthy_and_503_otherwise(
    served: tuple[PrometheusMetrics, Health, httpx.AsyncClient],
) -> None:
    _, health, client = served
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"healthy": True, "listener_connected": True}
    assert response.headers["content-type"] == "application/json"
    health.document = {"healthy": False, "listener_connected": False}
    response = await client.get("/healthz")
    assert response.status_code == 503 and response.json()["listener_connected"] is False


async def test_a_failing_health_callable_is_unhealthy() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    async with serve(PrometheusMetrics(), broken, "127.0.0.1:0") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/healthz")
    assert response.status_code == 503 and response.json() == {"healthy": False, "error": "RuntimeError: boom"}


async def test_other_requests(served: tuple[PrometheusMetrics, Health, httpx.AsyncClient]) -> None:
    _, _, client = served
    assert (await client.get("/")).status_code == 404
    assert (await client.post("/metrics")).status_code == 405
    head = await client.head("/metrics")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    assert (await client.get("/metrics?x=1")).status_code == 200


async def test_garbage_and_oversized_headers_get_400() -> None:
    """aiohttp's parser refuses both (a header line over 8190 bytes is a 400 there, not a 431)."""
    async with serve(PrometheusMetrics(), Health({"healthy": True}), "127.0.0.1:0") as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"HELLO\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", await reader.read())
        writer.close()
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", await reader.read())
        writer.close()
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/metrics")).status_code == 200, "still serving"


# -- loop liveness ------------------------------------------------------------------------


async def test_loop_watch_sees_a_blocked_loop() -> None:
    with LoopWatch(interval=0.01, max_lag=0.1) as watch:
        assert watch.alive()
        time.sleep(0.3)  # the event loop is blocked: what a stuck daemon looks like
        assert watch.lag() >= 0.2 and not watch.alive()
    assert not watch.alive(), "a stopped watch reports the loop as not watched"


# -- a real daemon ------------------------------------------------------------------------


async def test_daemon_metrics_and_health_over_http(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, settings: Settings
) -> None:
    campaign, _ = await make_user(db, "log")
    metrics = PrometheusMetrics()
    daemon = Daemon(replace(settings, metrics_address="127.0.0.1:0"), dsn, metrics=metrics)
    async with serve_daemon(daemon, "127.0.0.1:0") as server, httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        before = await client.get("/healthz")
        assert before.status_code == 503, "not started yet"
        assert before.json()["started"] is False and before.json()["listener_connected"] is False

        task = asyncio.create_task(daemon.run())
        try:
            async with asyncio.timeout(15):
                await daemon.started.wait()
            response = await client.get("/healthz")
            assert response.status_code == 200, response.text
            doc = response.json()
            assert doc["listener_connected"] is True and doc["loop_alive"] is True
            assert 0 <= doc["last_heartbeat_age_seconds"] < settings.heartbeat_seconds + 1

            post = await insert_post(db, campaign, soon(0.3), platform="log")
            failing = await insert_post(db, campaign, soon(0.3), platform="nowhere")
            await watcher.wait(post, "published")
            await watcher.wait(failing, "draft")

            got = samples((await client.get("/metrics")).text)
            assert got[("scheduler_published_total", (("platform", "log"),))] == 1
            assert got[("scheduler_publish_lateness_seconds_count", (("platform", "log"),))] == 1
            assert got[("scheduler_publish_lateness_seconds_bucket", (("le", "10.0"), ("platform", "log")))] == 1
            assert got[("scheduler_failed_total", (("platform", "nowhere"), ("reason", "invalid")))] == 1
            assert got[("scheduler_db_round_trip_seconds_count", ())] >= 1, "the connect-time clock anchor"
        finally:
            daemon.stop()
            async with asyncio.timeout(15):
                await task
        after = await client.get("/healthz")
        assert after.status_code == 503 and after.json()["listener_connected"] is False


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


async def test_serve_daemon_needs_prometheus_metrics(dsn: str, settings: Settings) -> None:
    with pytest.raises(TypeError):
        async with serve_daemon(Daemon(settings, dsn), "127.0.0.1:0"):
            pass
