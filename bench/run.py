"""The benchmark: ``python -m bench.run [--smoke] [--only NAME ...] [--out DIR]``.

Starts (or uses) a PostgreSQL server, runs every scenario of issue 6 against it and a
local webhook receiver, and writes ``results.json`` and ``RESULTS.md`` to ``--out``
(default: this folder for a full run; a smoke run must be given one). Exit status 1 if
any scenario failed (its traceback is in the results).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from bench import machine, report
from bench.context import FULL, SMOKE, Context
from bench.harness import quiet_logs
from bench.pg import BenchDatabases
from bench.scenarios import (
    burst,
    concurrency,
    idle,
    lateness,
    linear,
    media,
    profile,
    realistic,
    registration,
    replicas,
    roundtrips,
    schedule,
    speedups,
)
from scheduler_daemon.testing.postgres import server

HERE = Path(__file__).resolve().parent
# The bench's helper processes (`python -m bench.receiver`, …) find this package from anywhere.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "lateness": lateness.run,
    "burst": burst.run,
    "schedule": schedule.run,
    "registration": registration.run,
    "idle": idle.run,
    "roundtrips": roundtrips.run,
    "realistic": realistic.run,
    "media": media.run,
    "replicas": replicas.run,
    "concurrency": concurrency.run,
    "profile": profile.run,
    "linear": linear.run,
}
ISSUE_6 = ("lateness", "burst", "schedule", "registration", "idle", "roundtrips")
# speedups reruns lateness and burst on uvloop (issue 6's last); issue 16's come after it
ORDER = [*ISSUE_6, "speedups", *(n for n in SCENARIOS if n not in ISSUE_6)]


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(smoke: bool, only: list[str], out: Path) -> dict[str, Any]:
    sizes = SMOKE if smoke else FULL
    started = dt.datetime.now(dt.timezone.utc)
    began = time.perf_counter()
    scenarios: dict[str, Any] = {}
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="scheduler-bench-") as tmp, server(Path(tmp)) as server_url:
        databases = BenchDatabases(server_url)
        asyncio.run(databases.prepare())
        ctx = Context(server_url, databases, sizes, smoke, Path(tmp))
        described = asyncio.run(machine.describe(server_url))
        try:
            for name in ORDER:
                if only and name not in only:
                    continue
                _log(f"{name} …")
                t0 = time.perf_counter()
                try:
                    if name == "speedups":
                        scenarios[name] = speedups.run(ctx, scenarios)
                    else:
                        scenarios[name] = SCENARIOS[name](ctx)
                except Exception:
                    scenarios[name] = {"error": traceback.format_exc(), "targets": []}
                    _log(f"{name} FAILED:\n{scenarios[name]['error']}")
                _log(f"{name} done in {time.perf_counter() - t0:.1f} s")
        finally:
            asyncio.run(databases.drop_all())
    command = "python -m bench.run" + (" --smoke" if smoke else "") + "".join(f" --only {n}" for n in only)
    results = {
        "command": command,
        "mode": "smoke" if smoke else "full",
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - began, 1),
        "sizes": sizes.as_dict(),
        "machine": {**described, "revision_at_end": machine.revision(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                    "calibration_s_at_end": machine.calibration_s()},
        "scenarios": scenarios,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "RESULTS.md").write_text(report.render(results))
    _log(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every scenario shrunk, for CI (well under a minute)")
    parser.add_argument("--only", action="append", default=[], choices=ORDER, metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(ORDER)}")
    parser.add_argument("--out", type=Path, help="where to write results.json and RESULTS.md")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite RESULTS.md from the results.json in --out (after editing analysis.md)")
    args = parser.parse_args(argv)
    if args.render:
        out = args.out or HERE
        (out / "RESULTS.md").write_text(report.render(json.loads((out / "results.json").read_text())))
        return 0
    if args.out is None and args.smoke:
        parser.error("a smoke run needs --out (the committed bench/RESULTS.md is a full run's)")
    results = run(args.smoke, args.only, args.out or HERE)
    failed = [n for n, s in results["scenarios"].items() if "error" in s]
    for name, scenario in results["scenarios"].items():
        for t in scenario.get("targets", []):
            verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            print(f"{name:13} {t['figure'][:60]:60} {t['measured']!s:>10} {t['unit']:11} "
                  f"{t['op']} {t['limit']:<8g} {verdict}")
    if failed:
        print(f"failed scenarios: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
