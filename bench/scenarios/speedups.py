"""7. uvloop and orjson, with and without.

uvloop: the lateness and burst scenarios run again, whole, on a uvloop event loop (the
bench process, hence the in-process daemon and the bare clients, run on it); the
asyncio figures are those of scenarios 1 and 2 in the same run.

orjson: the daemon does not use it (the package only imports ``json``), so its effect is
shown as the JSON work of one publish, timed with ``json`` and with ``orjson``: parsing
the NOTIFY payload, decoding the claim's jsonb columns, encoding the webhook body and
parsing the answer; compared with the CPU one post costs in the burst.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import timeit
import uuid
from collections.abc import Callable
from typing import Any

from ..context import Context
from . import burst, lateness

NOTIFY = json.dumps({"op": "I", "id": str(uuid.uuid4()), "status": "scheduled", "date": "2030-01-01",
                     "time": "12:00:00.123456", "tz": "Europe/Paris", "retry_at": None, "version": 3})
CONNECTIONS = json.dumps([{"id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), "platform": "webhook",
                           "account_id": "bench", "access_token": "bench-webhook-secret", "refresh_token": None,
                           "token_expires_at": None, "metadata": {"url": "http://127.0.0.1:9/hook"},
                           "needs_reconnect": False}])
BODY = {"post_id": str(uuid.uuid4()), "platform": "webhook", "content": "x" * 280, "media": [],
        "scheduled_at": "2030-01-01T12:00:00.123456Z", "campaign_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())}
ANSWER = b'{"id":"r-1"}'


def _per_publish(dumps: Callable[[Any], bytes], loads: Callable[[str | bytes], Any]) -> Callable[[], None]:
    def work() -> None:
        loads(NOTIFY)  # arm
        loads(CONNECTIONS)  # claim: connections, media, publish_state
        loads("[]")
        loads("{}")
        dumps(BODY)  # webhook body
        loads(ANSWER)  # webhook answer

    return work


def _micro_us(work: Callable[[], None]) -> float:
    runs = 20_000
    best = min(timeit.repeat(work, number=runs, repeat=5))
    return round(best / runs * 1e6, 3)


def orjson_figures(cpu_ms_per_post: float | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "json_us_per_publish": _micro_us(
            _per_publish(lambda v: json.dumps(v, separators=(",", ":")).encode(), json.loads)),
    }
    if importlib.util.find_spec("orjson") is None:
        result["orjson"] = "not installed"
        return result
    import orjson

    result["orjson_us_per_publish"] = _micro_us(_per_publish(orjson.dumps, orjson.loads))
    saved = result["json_us_per_publish"] - result["orjson_us_per_publish"]
    result["saved_us_per_publish"] = round(saved, 3)
    if cpu_ms_per_post:
        result["saved_percent_of_cpu_per_post"] = round(saved / (cpu_ms_per_post * 1000) * 100, 2)
    return result


def run(ctx: Context, asyncio_results: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if importlib.util.find_spec("uvloop") is None:
        result["uvloop"] = "not installed"
    else:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result["uvloop_lateness"] = runner.run(lateness.measure(ctx, loop="uvloop"))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result["uvloop_burst"] = runner.run(burst.measure(ctx, loop="uvloop", every_transport=not ctx.smoke))
    cpu = None
    daemon_runs = asyncio_results.get("burst", {}).get("daemon", [])
    if daemon_runs:
        cpu = min(float(r["cpu_ms_per_post"]) for r in daemon_runs)
    result["orjson"] = orjson_figures(cpu)
    result["comparison"] = _compare(asyncio_results, result)
    result["targets"] = []
    return result


def _compare(base: dict[str, Any], speed: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "uvloop_lateness" in speed and "lateness" in base:
        for q in ("p50", "p99", "max"):
            rows.append({"figure": f"lateness {q} (ms)", "asyncio": base["lateness"]["arrival_minus_due_ms"].get(q),
                         "uvloop": speed["uvloop_lateness"]["arrival_minus_due_ms"].get(q)})
    if "uvloop_burst" in speed and "burst" in base:
        for a, b in zip(base["burst"]["daemon"], speed["uvloop_burst"]["daemon"], strict=False):
            rows.append({"figure": f"burst posts/s, daemon {a['transport']}", "asyncio": a["posts_per_s"],
                         "uvloop": b["posts_per_s"]})
            rows.append({"figure": f"burst CPU ms/post, daemon {a['transport']}", "asyncio": a["cpu_ms_per_post"],
                         "uvloop": b["cpu_ms_per_post"]})
        for a, b in zip(base["burst"]["bare_clients"], speed["uvloop_burst"]["bare_clients"], strict=False):
            rows.append({"figure": f"burst requests/s, bare {a['client']}", "asyncio": a["posts_per_s"],
                         "uvloop": b["posts_per_s"]})
    return rows
