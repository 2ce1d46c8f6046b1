"""11. The concurrency model: what one request in flight costs, and HTTP/2 against HTTP/1.1.

*In flight*: a sink that holds every answer (``bench.receiver --hold``, TLS like the
platforms, its own process) until N requests are open; then the client's resident memory
and open file descriptors are read from /proc and the answers released. The client is a
``scheduler-daemon run`` process (``SCHEDULER_CONCURRENCY=N``, N webhook posts due at one
instant; once over plain HTTP for comparison), and bare clients in their own processes
(``bench.clients``): aiohttp HTTP/1.1 and httpx HTTP/2 (the sink allowing N streams per
connection, so that all can be open). Per request = (in flight − before the burst) / N.

*HTTP/2 against HTTP/1.1*, to one host over TLS, bare clients in their own processes:
a zero-latency burst at concurrency 100 (the client's CPU per request decides the
daemon's rate), and a burst at the platforms' latency (median 300 ms) with every request
sent at once, the sink allowing 100 streams per connection as the platforms' front ends
do (and 1,000, to show what that cap does to httpx, which multiplexes on one connection).
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from typing import Any

import asyncpg

from ..clients import ClientProcess
from ..context import Context
from ..pg import insert_same_instant, webhook_campaign
from ..process import DaemonProcess, cpu_seconds, memory_mb, open_fds
from ..receiver import Certificates, ReceiverProcess, certificates
from ..results import target
from .realistic import latency_options
from .replicas import DAEMON, daemon_env, published_count

ZERO_LATENCY_CONCURRENCY = 100


def _per_request(before: tuple[float, int], held: tuple[float, int], n: int) -> dict[str, Any]:
    (rss0, fds0), (rss1, fds1) = before, held
    return {"rss_before_mib": round(rss0, 1), "rss_in_flight_mib": round(rss1, 1),
            "fds_before": fds0, "fds_in_flight": fds1,
            "kib_per_request": round((rss1 - rss0) * 1024 / n, 1), "fds_per_request": round((fds1 - fds0) / n, 3)}


async def _held(rx: ReceiverProcess, n: int) -> int:
    """Requests held once all came, or once they stopped coming for 2 s (httpx's HTTP/2 keeps
    at most 100 open per host); TLS handshakes may take seconds before the first."""
    counts: list[int] = []
    deadline = time.time() + 180
    while time.time() < deadline:
        complete, arrivals = await rx.wait(n, timeout=1.0)
        counts.append(len(arrivals))
        if complete or (counts[-1] > 0 and counts[-3:] == [counts[-1]] * 3):
            break
    return counts[-1]


def _sample(pid: int) -> tuple[float, int]:
    return memory_mb(pid)[0], open_fds(pid)


# The daemon as `scheduler-daemon run`, without uvloop even where it is installed.
ASYNCIO_DAEMON = [DAEMON[0], "-c", "import sys; sys.modules['uvloop'] = None; "
                  "from scheduler_daemon.cli import main; sys.exit(main())", "run"]


# What `scheduler-daemon run` runs on: uvloop when installed (the speed extra), else asyncio.
DAEMON_LOOP = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


async def _daemon_in_flight(
    ctx: Context, certs: Certificates, n: int, tls: bool, loop: str = DAEMON_LOOP
) -> dict[str, Any]:
    async with ReceiverProcess("fast", "--hold", tls=certs if tls else None) as rx, ctx.database() as dsn:
        db = await asyncpg.connect(dsn)
        try:
            campaign = await webhook_campaign(db, rx.url)
            env = daemon_env(dsn, "in-flight", SCHEDULER_CONCURRENCY=str(n), SSL_CERT_FILE=str(certs.ca))
            argv = DAEMON if loop == DAEMON_LOOP else ASYNCIO_DAEMON
            async with DaemonProcess(argv, env, output=ctx.work_dir / "in-flight.log") as daemon:
                before, cpu = _sample(daemon.pid), cpu_seconds(daemon.pid)
                due = time.time() + ctx.sizes.lead_s + n / 2500
                await insert_same_instant(db, campaign, due, n)
                complete, arrivals = await rx.wait(n, timeout=180)
                held = _sample(daemon.pid)
                cpu = cpu_seconds(daemon.pid) - cpu
                peak = memory_mb(daemon.pid)[1]
                stats = await rx.stats()
                await rx.release()
                published, _ = await published_count(db, n, timeout=180)
        finally:
            await db.close()
    last = max((a.wall for a in arrivals), default=due)
    return {"client": "daemon", "tls": tls, "loop": loop, "in_flight": n, "complete": complete and published == n,
            **_per_request(before, held, n), "peak_rss_mib": round(peak, 1),
            "all_in_flight_s": round(last - due, 3), "cpu_ms_per_request": round(cpu / n * 1000, 3),
            "sink_connections": stats["max_connections"], "protocols": stats["protocols"]}


async def _bare(certs: Certificates, client: str, n: int, concurrency: int, options: list[str],
                hold: bool) -> dict[str, Any]:
    sink_options = [*options, *(["--hold"] if hold else [])]
    async with ReceiverProcess("fast", *sink_options, tls=certs) as rx, \
            ClientProcess(client, rx.url + "/hook", n, concurrency, str(certs.ca)) as c:
        before, sink_cpu = _sample(c.pid), cpu_seconds(rx.pid)
        await c.go()
        figures: dict[str, Any] = {}
        if hold:
            reached = await _held(rx, n)
            figures = {"in_flight": reached, **_per_request(before, _sample(c.pid), n)}
            await rx.release()
        result = await c.result()
        stats = await rx.stats()
        sink_cpu = cpu_seconds(rx.pid) - sink_cpu
        peak = memory_mb(c.pid)[1]
    return {"client": client, "requests": n, "concurrency": concurrency, "sink": " ".join(options), **figures,
            **result, "requests_per_s": round(n / result["wall_s"], 1) if result["wall_s"] else None,
            "cpu_ms_per_request": round(result["cpu_s"] / n * 1000, 4),
            "sink_cpu_ms_per_request": round(sink_cpu / n * 1000, 4), "peak_rss_mib": round(peak, 1),
            "sink_connections": stats["max_connections"], "protocols": stats["protocols"]}


async def measure(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    certs = certificates(ctx.work_dir / "tls")
    daemon = [await _daemon_in_flight(ctx, certs, n, tls=True) for n in s.inflight]
    if not ctx.smoke:  # the smoke run keeps one of each kind of measurement
        middle = s.inflight[len(s.inflight) // 2]
        if DAEMON_LOOP != "asyncio":
            daemon.append(await _daemon_in_flight(ctx, certs, middle, tls=True, loop="asyncio"))
        daemon.append(await _daemon_in_flight(ctx, certs, middle, tls=False))
    n = s.protocol_requests
    bare_in_flight = [await _bare(certs, client, n, n, ["--max-streams", str(n)], hold=True)
                      for client in ("aiohttp", "httpx-h2")]
    clients = ("aiohttp", "httpx-h2") if ctx.smoke else ("aiohttp", "daemon-transport", "httpx-h1", "httpx-h2")
    zero = [await _bare(certs, client, n, ZERO_LATENCY_CONCURRENCY, ["--max-streams", "100"], hold=False)
            for client in clients]
    latency = latency_options(ctx)
    slow = [await _bare(certs, client, n, n, [*latency, "--max-streams", "100"], hold=False)
            for client in clients if client != "httpx-h1"]
    if not ctx.smoke:
        slow.append(await _bare(certs, "httpx-h2", n, n, [*latency, "--max-streams", "1000"], hold=False))
    return {"daemon_in_flight": daemon, "bare_in_flight": bare_in_flight, "zero_latency": zero,
            "platform_latency": slow, "platform_latency_ms": s.platform_latency_ms}


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    zero = {r["client"]: r for r in result["zero_latency"]}
    slow = {(r["client"], r["sink"].split()[-1]): r for r in result["platform_latency"]}
    h2, h1 = zero["httpx-h2"], zero["aiohttp"]
    result["targets"] = [
        target("concurrency", "every request in flight was answered and recorded",
               float(sum(1 for d in result["daemon_in_flight"] if not d["complete"])), "<=", 0, "runs"),
        target("concurrency", "does HTTP/2 beat HTTP/1.1? zero-latency burst, requests/s",
               float(h2["requests_per_s"] or 0) / float(h1["requests_per_s"] or 1) * 100, ">=", 100.0, "%",
               f"{h2['requests_per_s']} vs {h1['requests_per_s']} requests/s; client CPU "
               f"{h2['cpu_ms_per_request']} vs {h1['cpu_ms_per_request']} ms/request"),
        target("concurrency", "does HTTP/2 beat HTTP/1.1? 300 ms platform, all at once, speed",
               float(slow[("aiohttp", "100")]["wall_s"]) / float(slow[("httpx-h2", "100")]["wall_s"]) * 100,
               ">=", 100.0, "%",
               f"{slow[('httpx-h2', '100')]['wall_s']} s vs {slow[('aiohttp', '100')]['wall_s']} s "
               f"(100 streams per connection); at 1,000 streams: "
               f"{slow.get(('httpx-h2', '1000'), {}).get('wall_s')} s"),
    ]
    return result
