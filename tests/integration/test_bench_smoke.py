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
SCENARIOS = ("lateness", "burst", "schedule", "registration", "idle", "roundtrips", "speedups")


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
    assert set(rows) == {"0", str(sizes["schedule_small"]), str(sizes["schedule_big"])}
    for figures in rows.values():
        assert set(figures) == {"daemon", "naive_heap", "naive_tasks"}
        assert all(f["ready_s"] > 0 and f["peak_rss_mb"] >= f["rss_mb"] > 0 for f in figures.values())
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

    targets = [t for s in scenarios.values() for t in s["targets"]]
    assert len(targets) >= 15 and all(t["met"] in (True, False) for t in targets)
    report = (tmp_path / "RESULTS.md").read_text()
    for title in ("1. Lateness", "2. Burst", "3. A big schedule", "4. Registration", "5. Idle",
                  "6. Round trips", "7. uvloop and orjson"):
        assert f"## {title}" in report
