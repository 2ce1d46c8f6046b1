"""/metrics and /healthz over real HTTP, and a real daemon publishing while it is being
scraped (the hooks themselves: tests/unit/test_metrics.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler_daemon.config import Settings
from scheduler_daemon.daemon import Daemon
from scheduler_daemon.observability.metrics import PrometheusMetrics
from scheduler_daemon.observability.server import serve, serve_daemon
from support.helpers import Watcher, insert_post, make_user, soon


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found



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
    async with serve(metrics, health, "127.0.0.1:0") as server, httpx.AsyncClient(base_url=server.url, timeout=5) as c:
        yield metrics, health, c


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

    async with serve(PrometheusMetrics(), broken, "127.0.0.1:0") as server, httpx.AsyncClient(base_url=server.url) as c:
        response = await c.get("/healthz")
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



# -- a real daemon ------------------------------------------------------------------------


async def test_daemon_metrics_and_health_over_http(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, settings: Settings
) -> None:
    campaign, _ = await make_user(db, "log")
    metrics = PrometheusMetrics()
    daemon = Daemon(replace(settings, metrics_address="127.0.0.1:0"), dsn, metrics=metrics)
    async with (
        serve_daemon(daemon, "127.0.0.1:0") as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as client,
    ):
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



async def test_serve_daemon_needs_prometheus_metrics(dsn: str, settings: Settings) -> None:
    with pytest.raises(TypeError):
        async with serve_daemon(Daemon(settings, dsn), "127.0.0.1:0"):
            pass
