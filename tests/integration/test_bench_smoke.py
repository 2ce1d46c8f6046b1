"""The benchmark keeps working: its smoke run finishes and writes complete, sane output.

No timing is asserted here (figures on a shared CI machine are not targets); the
figures themselves come from a full run, in bench/RESULTS.md.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("lateness", "burst", "schedule", "registration", "idle", "roundtrips", "speedups",
             "realistic", "media", "replicas", "concurrency", "profile", "linear")


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _complete(dist: dict[str, Any], n: int) -> None:
    assert dist["n"] == n
    assert dist["min"] <= dist["p50"] <= dist["p99"] <= dist["max"]


def test_smoke_bench_runs_and_writes_complete_results(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert results["machine"]["cores"] and results["machine"]["postgresql"]
    scenarios = results["scenarios"]
    assert tuple(scenarios) == SCENARIOS
    for name, scenario in scenarios.items():
        assert "error" not in scenario, f"{name}: {scenario.get('error')}"
        assert all(math.isfinite(n) for n in _numbers(scenario)), name
    sizes = results["sizes"]

    lateness = scenarios["lateness"]
    assert lateness["complete"] and lateness["duplicates"] == 0
    _complete(lateness["arrival_minus_due_ms"], sizes["lateness_posts"])

    burst = scenarios["burst"]
    assert burst["daemon"] and {b["client"] for b in burst["bare_clients"]} >= {"aiohttp", "httpx-default"}
    for run in burst["daemon"]:
        assert run["complete"] and run["duplicates"] == 0
        assert run["arrived"] == run["published_rows"] == sizes["burst_posts"]
        assert run["posts_per_s"] > 0
    if importlib.util.find_spec("httpx_aiohttp") is not None:
        assert {r["transport"] for r in burst["daemon"]} == {"daemon-default", "httpx-default", "httpx-aiohttp"}

    rows = scenarios["schedule"]["rows"]
    assert set(rows) == {"0", str(sizes["schedule_small"]), str(sizes["schedule_big"]), str(sizes["schedule_huge"])}
    for count, figures in rows.items():
        measured = {who: f for who, f in figures.items() if who != "seeding"}
        assert set(measured) == ({"daemon"} if count == str(sizes["schedule_huge"]) else
                                 {"daemon", "naive_heap", "naive_tasks"})
        assert all(f["ready_s"] > 0 and f["peak_rss_mb"] >= f["rss_mb"] > 0 for f in measured.values())
        assert count == "0" or figures["seeding"]["table_mib"] > 0
    assert str(sizes["schedule_big"]) in rows[str(sizes["schedule_big"])]["daemon"]["status"], "READY after arming all"

    registration = scenarios["registration"]
    _complete(registration["arming"]["send_to_armed_ms"], sizes["registration_inserts"])
    reschedules = registration["reschedules"]
    assert reschedules["caught_up"] and reschedules["timers_not_matching_table"] == 0
    assert reschedules["notifications_handled"] == reschedules["rows_rescheduled"] > 0

    idle = scenarios["idle"]
    assert idle["armed"] == sizes["idle_posts"]
    assert idle["boot"]["statements_by_query"].get("load_scheduled") == 1, "the proxy saw the boot load"

    for shape in ("spread", "burst"):
        trips = scenarios["roundtrips"][shape]
        assert trips["complete"]
        assert trips["statements_by_query"]["claim"] >= 1 and trips["statements_by_query"]["record_outcomes"] >= 1

    speedups = scenarios["speedups"]
    assert speedups["orjson"]["json_us_per_publish"] > 0
    if importlib.util.find_spec("uvloop") is not None:
        assert speedups["uvloop_lateness"]["complete"] and speedups["comparison"]

    per_account = sizes["realistic_per_account"]
    for name, kinds in (("realistic", ("default", "uncapped")), ("media", ("default", "uncapped", "shipped_pacing"))):
        for kind in kinds:
            burst = scenarios[name][kind]
            accounts = sizes["media_paced_accounts"] if kind == "shipped_pacing" else sizes["realistic_accounts"]
            per = sizes["media_paced_per_account"] if kind == "shipped_pacing" else per_account
            assert burst["complete"] and burst["duplicates"] == 0, (name, kind)
            assert burst["arrived"] == burst["posts"] == accounts * per, (name, kind)
            assert burst["statuses"] == {"published": burst["posts"]}, (name, kind)
            _complete(burst["lateness_ms"], burst["posts"])
    media_calls = scenarios["media"]["default"]["calls"]
    assert media_calls["create"] == media_calls["publish"] == scenarios["media"]["default"]["posts"]
    assert media_calls["status"] >= media_calls["create"], "the adapter waited for FINISHED"

    linear = scenarios["linear"]
    assert linear["n"] == sizes["linear_chars"] and len(linear["rows"]) >= 4 * 10
    assert all(r["ms_big"] > 0 and r["ratio"] > 0 for r in linear["rows"])

    replicas = scenarios["replicas"]
    assert {r["processes"] for r in replicas["runs"]} == {1, 2} and replicas["speedup"] > 0
    for run in replicas["runs"]:
        assert run["complete"] and run["duplicates"] == 0 and run["arrived"] == sizes["replica_posts"]
        assert sum(run["published_by_instance"].values()) == sizes["replica_posts"]

    concurrency = scenarios["concurrency"]
    for held in concurrency["daemon_in_flight"]:
        assert held["complete"] and held["sink_connections"] >= held["in_flight"]
        assert held["fds_in_flight"] >= held["fds_before"] + held["in_flight"]
    assert {b["client"] for b in concurrency["bare_in_flight"]} == {"aiohttp", "httpx-h2"}
    for run in concurrency["zero_latency"] + concurrency["platform_latency"]:
        assert run["errors"] == 0 and sum(run["versions"].values()) == sizes["protocol_requests"], run["client"]
        assert set(run["versions"]) == {"HTTP/2" if run["client"] == "httpx-h2" else "HTTP/1.1"}

    for profiled in scenarios["profile"]["runs"]:
        assert profiled["complete"] and profiled["samples"] > 0
        assert math.isclose(sum(c["percent"] for c in profiled["categories"]), 100, abs_tol=1)
        assert profiled["top_self"] and profiled["top_total"]

    targets = [t for s in scenarios.values() for t in s["targets"]]
    assert len(targets) >= 15 and all(t["met"] in (True, False) for t in targets)
    report = (tmp_path / "RESULTS.md").read_text()
    for title in ("1. Lateness", "2. Burst", "3. A big schedule", "4. Registration", "5. Idle",
                  "6. Round trips", "7. uvloop and orjson", "8. Realistic burst", "9. Media burst", "10. Replicas",
                  "11. The concurrency model", "12. Profile of the burst"):
        assert f"## {title}" in report
