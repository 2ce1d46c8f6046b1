"""12. Profile of the burst: where the daemon's CPU goes while posts of many accounts fall due.

``py-spy record`` samples the bench process (the daemon runs in it) from the moment every
post is armed to the moment every outcome is written, for two bursts of the realistic
shape (posts of many accounts at one instant): against the zero-latency receiver with the
defaults, and at the platforms' latency with ``SCHEDULER_CONCURRENCY`` at the burst's size
(the instant once the global cap is lifted). Idle samples (the loop waiting in epoll) are
not recorded, so shares are of the CPU the loop spent. Cyclic GC is timed apart with
``gc.callbacks`` (py-spy shows it inside whatever frame allocated).

Each sample goes to the first of ``CATEGORIES`` that any of its frames matches: the things
that need not happen at the instant first, then the send itself, then the rest. Top frames
by self time (the sample's innermost frame) and by total time (anywhere in the stack) make
the flame summary.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..context import Context
from ..harness import bench_settings
from ..instant import Burst, through_daemon
from ..receiver import ReceiverProcess
from ..results import target
from .realistic import latency_options

RATE = 250  # samples per second
ATTACH_SECONDS = 0.3


def _any(*needles: str) -> Callable[[str], bool]:
    return lambda frame: any(n in frame for n in needles)


# (name, what it is, does it need to happen at the instant?, frame predicate); first match wins.
CATEGORIES: list[tuple[str, str, bool, Callable[[str], bool]]] = [
    ("log rendering", "structlog and logging: the publish summary line (fields, metrics, rendering, redaction)",
     False, _any("structlog/", "logging/__init__.py", "scheduler_daemon/logs.py", "scheduler_daemon/redact.py",
                 "Publisher._log_summary (")),
    ("the claim's own notifications", "the claim's UPDATE to 'publishing' sends one NOTIFY per row back to the "
     "daemon: read, parsed, looked up (and counted by the bench's probe)", False,
     _any("scheduler_daemon/db/listener.py", "scheduler_daemon/db/payloads.py", "Dispatcher.on_payload (",
          "probed_payload (bench/", "Probes.on_notification (")),
    ("request building and signing", "the body (payload, json.dumps), the HMAC signature, httpx's Request and "
     "headers; since branch instant built at the claim, before the instant (Publisher._ahead)", False,
     _any("payload (scheduler_daemon/platforms/webhook.py)", "signature (scheduler_daemon/platforms/webhook.py)",
          "build_request (httpx/_client.py)", "_parsed (scheduler_daemon/platforms/webhook.py)",
          "dumps (json/__init__.py)", "form_request (", "get_request (", "Publisher._ahead (",
          "build_ahead (scheduler_daemon/platforms/delivery.py)", "publish_request (")),
    ("claim", "the claim round trip and turning its rows into posts (rows, jsonb, the post and its connection)",
     False, _any("Dispatcher._claim (", "Repository.claim (", "scheduler_daemon/db/rows.py", "ClaimedPost.")),
    ("outcome write path", "classify/published, the writer's batch, record_outcomes, the futures", False,
     _any("scheduler_daemon/engine/writer.py", "Repository.record (", "published (scheduler_daemon/engine/classify.py",
          "probed_record (bench/")),
    ("pacing", "the pacer's slots (per platform, per account) and the global semaphore", False,
     _any("scheduler_daemon/platforms/pacing.py", "asyncio/locks.py")),
    ("waiting for the instant", "the claim-ahead wait and the spin of its last 1.5 ms", False,
     _any("Publisher._until_due (")),
    ("dispatch", "popping the due timers, starting one task per post", False,
     _any("Dispatcher._dispatch (", "Dispatcher._sleeper (", "scheduler_daemon/engine/timers.py",
          "scheduler_daemon/engine/burst.py")),
    ("HTTP: transport and aiohttp", "the daemon's AiohttpTransport and outbound guard (the httpx.Response it builds "
     "included), aiohttp's request/response, the socket", True,
     _any("scheduler_daemon/net/transport.py", "scheduler_daemon/net/guard.py", "aiohttp/", "yarl/",
          "multidict/")),
    ("HTTP: httpx above the transport", "httpx's client.send around the transport: auth, redirects, cookies, "
     "response hooks, models", True,
     _any("httpx/")),
    ("publish attempt (rest)", "validation, the adapter's own code, the attempt's deadline, the task running it",
     True,
     _any("scheduler_daemon/engine/publisher.py", "scheduler_daemon/platforms/", "scheduler_daemon/net/deadline.py",
          "Dispatcher._publish (")),
    ("database driver (rest)", "asyncpg outside the claim and the outcome write", True,
     _any("asyncpg/", "scheduler_daemon/db/")),
    ("event loop and the rest", "the loop itself, selectors, socket reads and writes, callbacks", True,
     lambda f: True),
]
OTHER_THREAD = "Thread._bootstrap ("  # asyncio's child watcher thread waiting in waitpid: not the loop


def parse(raw: str) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format, ``frame;frame;… count`` per line; the loop's thread only."""
    samples = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit() and OTHER_THREAD not in stack:
            samples.append((stack.split(";"), int(count)))
    return samples


def summarise(samples: list[tuple[list[str], int]], top: int = 15) -> dict[str, Any]:
    total = sum(n for _, n in samples) or 1
    by_category: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    for frames, n in samples:
        for name, _, _, matches in CATEGORIES:
            if any(matches(f) for f in frames):
                by_category[name] += n
                break
        self_time[frames[-1]] += n
        for frame in set(frames):
            total_time[frame] += n

    def pct(n: int) -> float:
        return round(n / total * 100, 1)

    return {
        "samples": total,
        "categories": [{"category": name, "what": what, "needed_at_the_instant": needed,
                        "percent": pct(by_category[name])} for name, what, needed, _ in CATEGORIES],
        "top_self": [[frame, pct(n)] for frame, n in self_time.most_common(top)],
        "top_total": [[frame, pct(n)] for frame, n in total_time.most_common(top + 10)
                      if not frame.startswith(("<module>", "run (asyncio/runners.py", "Runner.run", "_run_once",
                                                "BaseEventLoop.run", "Handle._run", "run_until_complete",
                                                "_run_module", "main (bench/run.py", "run (bench/",
                                                "_run_code ("))][:top],
    }


class GcTimer:
    """Cyclic GC collections and their CPU time while installed (``gc.callbacks``; CPU, not
    wall time: py-spy's pauses and other processes do not count)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections: Counter[int] = Counter()
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.seconds += time.process_time() - self._began
            self.collections[info["generation"]] += 1


class Sampler:
    """py-spy recording this process between ``start()`` and ``stop()``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc: asyncio.subprocess.Process | None = None
        self.gc = GcTimer()
        self.cpu = 0.0

    async def start(self) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not os.access(spy, os.X_OK):
            raise RuntimeError("py-spy is not installed (pip install -e '.[bench]')")
        self.proc = await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(os.getpid()), "--rate", str(RATE), "--format", "raw", "--nolineno",
            "--output", str(self.out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        # py-spy says nothing when it has attached (not on a pipe); it takes well under this,
        # and the posts are due more than a second after they are armed.
        await asyncio.sleep(ATTACH_SECONDS)
        if self.proc.returncode is not None:
            raise RuntimeError(f"py-spy ended before it sampled: {(await self.proc.communicate())[1][-500:]!r}")
        gc.callbacks.append(self.gc)
        self.cpu = time.process_time()

    async def stop(self) -> None:
        self.cpu = time.process_time() - self.cpu
        gc.callbacks.remove(self.gc)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            _, err = await self.proc.communicate()
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err[-500:]!r}")


async def _profiled(ctx: Context, rx: ReceiverProcess, label: str, concurrency: int | None) -> dict[str, Any]:
    s = ctx.sizes
    per_account = 5
    burst = Burst("webhook", max(1, s.profile_posts // per_account), per_account, {"url": rx.url + "/hook"})
    settings = bench_settings() if concurrency is None else bench_settings(concurrency=concurrency)
    sampler = Sampler(ctx.work_dir / f"profile-{label}.txt")
    figures = await through_daemon(ctx, rx, settings, burst, armed_hook=sampler.start, done_hook=sampler.stop)
    summary = summarise(parse(sampler.out.read_text()))
    return {
        "burst": label, "posts": burst.posts, "accounts": burst.accounts, "concurrency": settings.concurrency,
        "last_arrival_s": figures["last_arrival_s"], "lateness_ms": figures["lateness_ms"],
        "complete": figures["complete"], "cpu_s": round(sampler.cpu, 3),
        "cpu_ms_per_post": round(sampler.cpu / burst.posts * 1000, 4),
        "gc_ms": round(sampler.gc.seconds * 1000, 1), "gc_percent_of_cpu": round(
            sampler.gc.seconds / sampler.cpu * 100, 1) if sampler.cpu else None,
        "gc_collections": {str(g): n for g, n in sorted(sampler.gc.collections.items())},
        "claims_asked_won_ms_end": figures["claims_asked_won_ms_end"], **summary,
    }


async def measure(ctx: Context) -> dict[str, Any]:
    async with ReceiverProcess("fast") as rx:
        zero = await _profiled(ctx, rx, "zero-latency", None)
    async with ReceiverProcess("fast", *latency_options(ctx)) as rx:
        slow = await _profiled(ctx, rx, "platform-latency", ctx.sizes.profile_posts)
    return {"rate_hz": RATE, "runs": [zero, slow]}


def run(ctx: Context) -> dict[str, Any]:
    result = asyncio.run(measure(ctx))
    result["targets"] = [
        target("profile", f"profiled bursts complete ({', '.join(r['burst'] for r in result['runs'])})",
               float(sum(1 for r in result["runs"] if not r["complete"])), "<=", 0, "runs",
               "; ".join(f"{r['burst']}: {r['samples']} samples, {r['cpu_ms_per_post']} ms CPU/post under py-spy"
                         for r in result["runs"])),
    ]
    return result
