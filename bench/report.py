"""results.json → RESULTS.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ANALYSIS = Path(__file__).with_name("analysis.md")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _dist_rows(label: str, dist: dict[str, Any]) -> list[Any]:
    return [label, dist.get("n"), dist.get("p50"), dist.get("p90"), dist.get("p99"), dist.get("max")]


DIST = ("", "n", "p50", "p90", "p99", "max")


def _verdict(t: dict[str, Any]) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[t["met"]]


def _targets(results: dict[str, Any]) -> str:
    rows = []
    for name, scenario in results["scenarios"].items():
        for t in scenario.get("targets", []):
            rows.append([name, t["figure"], f"{_cell(t['measured'])} {t['unit']}",
                         f"{t['op']} {_cell(t['limit'])} {t['unit']}", _verdict(t), t["note"]])
    return table(("scenario", "figure", "measured", "target", "", "detail"), rows)


def _lateness(r: dict[str, Any]) -> str:
    return "\n\n".join([
        f"{r['posts']} posts due at random instants over {r['window_s']:g} s, inserted with plain SQL in one "
        f"transaction (taking {r['insert_s']} s, done {r['inserted_before_first_due_s']} s before the first was "
        f"due); transport {r['transport']}, "
        f"{r['loop']} loop. Arrived {r['arrived']}, duplicates {r['duplicates']}, early {r['early']}, "
        f"{r['claims']} claims.",
        table(DIST, [
            _dist_rows("arrival at the receiver − due (ms)", r["arrival_minus_due_ms"]),
            _dist_rows("daemon starts the request − due (ms)", r["publish_start_minus_due_ms"]),
            _dist_rows("claim round trip (ms)", r["claim_round_trip_ms"]),
        ]),
    ])


def _burst(r: dict[str, Any]) -> str:
    daemon_rows = [
        [
            f"daemon, {d['transport']} ({d['resolved_transport']})",
            d["posts_per_s"],
            d["first_arrival_s"],
            d["last_arrival_s"],
            d["outcomes_written_s"],
            d["duplicates"],
            d["arrived"],
            d["cpu_ms_per_post"],
        ]
        for d in r["daemon"]
    ]
    bare_rows = [
        [
            f"bare client, {b['client']} ({b.get('transport_class', '')})",
            b["posts_per_s"],
            b["first_arrival_s"],
            b["last_arrival_s"],
            None,
            b["duplicates"],
            b["arrived"],
            b["cpu_ms_per_request"],
        ]
        for b in r["bare_clients"]
    ]
    check = r["bare_aiohttp_vs_aiohttp_receiver"]
    check_row = [["bare client, aiohttp → the aiohttp (test-suite) receiver", check["posts_per_s"],
                  check["first_arrival_s"], check["last_arrival_s"], None, check["duplicates"], check["arrived"],
                  check["cpu_ms_per_request"]]]
    claims = "; ".join(f"{d['transport']}: " + ", ".join(f"{a}→{w} in {ms} ms" for a, w, ms in d["claims_asked_won_ms"])
                       for d in r["daemon"])
    return "\n\n".join(
        [
            f"{r['posts']:,} posts due at one instant ({r['loop']} loop, concurrency {r['concurrency']}). "
            "Times are seconds from the due instant (bare clients: from their start) at the receiver; "
            "CPU is the bench process's (daemon + probes, or the bare client).",
            table(
                (
                    "run",
                    "posts/s",
                    "first arrival (s)",
                    "last arrival (s)",
                    "all outcomes written (s)",
                    "duplicates",
                    "arrived",
                    "CPU ms/post",
                ),
                daemon_rows + bare_rows + check_row,
            ),
            f"Best: daemon with {r['best_daemon_transport']} at "
            f"{_cell(r['daemon_vs_best_bare'] * 100 if r['daemon_vs_best_bare'] else None)}% "
            f"of the best bare client ({_cell(r['best_bare_posts_per_s'])} requests/s). Claims (asked→won): {claims}.",
        ]
    )


def _schedule(r: dict[str, Any]) -> str:
    rows = []
    seeding = []
    for count, figures in r["rows"].items():
        for who, f in figures.items():
            if who == "seeding":
                seeding.append(f"{int(count):,} rows over {f['days']} days: INSERT {f['insert_s']} s, "
                               f"VACUUM {f['vacuum_s']} s, table and indexes {_cell(f['table_mib'])} MiB")
            else:
                rows.append([f"{int(count):,}", who, f["ready_s"], f["rss_mb"], f["peak_rss_mb"]])
    above = r["small_above_idle"]
    return "\n\n".join(
        [
            "Separate processes, spawn → READY=1 on our NOTIFY_SOCKET; memory from /proc at READY. `daemon` is "
            "`python -m scheduler_daemon.cli run --migrate` (nothing to apply); `naive_tasks` is one asyncio task "
            "per post, `naive_heap` the daemon's "
            "Timers, both in the same minimal process (bench/naive.py) loading rows the daemon's way.",
            table(("rows", "process", "start → READY (s)", "RSS at READY (MiB)", "peak RSS (MiB)"), rows),
            f"Smaller schedule above the idle daemon: +{above['ready_s']} s, +{above['rss_mb']} MiB at READY, "
            f"+{above['peak_rss_mb']} MiB peak. Seeding (triggers off, one INSERT … SELECT generate_series per "
            f"million rows): {'; '.join(seeding)}.",
        ]
    )


def _registration(r: dict[str, Any]) -> str:
    a, s = r["arming"], r["reschedules"]
    return "\n\n".join([
        f"{a['inserts']:,} single-row INSERTs, one at a time (autocommit). \"Row written\" is the INSERT's "
        "clock_timestamp(), before its commit and WAL flush; the commit is acknowledged to the client when "
        "PostgreSQL signals the listeners.",
        table(DIST, [_dist_rows("INSERT sent → armed (ms)", a["send_to_armed_ms"]),
                     _dist_rows("row written → armed (ms)", a["row_written_to_armed_ms"]),
                     _dist_rows("commit acknowledged → armed (ms)", a["ack_to_armed_ms"])]),
        f"Reschedules: {s['rows_rescheduled']:,} rows in {s['seconds']} s by UPDATEs of {s['rows_per_update']} rows "
        f"from another process (target {s['target_rate']:,}/s, achieved {_cell(s['achieved_rate'])}/s); "
        f"notifications handled {s['notifications_handled']:,}, caught up: {_cell(s['caught_up'])}, timers not "
        f"matching the table afterwards: {s['timers_not_matching_table']}; bench process CPU "
        f"{s['bench_process_cpu_percent']}% of one core.",
        table(DIST, [_dist_rows("commit → re-armed, whole run (ms)", s["lag_ms"]),
                     _dist_rows("first half (ms)", s["lag_first_half_ms"]),
                     _dist_rows("second half (ms)", s["lag_second_half_ms"])]),
    ])


def _idle(r: dict[str, Any]) -> str:
    idle, boot = r["idle"], r["boot"]
    return (
        f"{r['armed']:,} posts armed, {r['seconds']:g} s idle, heartbeat every {r['heartbeat_s']:g} s "
        f"(expected {r['expected_heartbeats']}). Statements sent: {idle['statements']} "
        f"({idle['statements_by_query'] or 'none'}); round trips {idle['round_trips']}. "
        f"For reference, the boot itself: {boot['statements']} statements, {boot['round_trips']} round trips, "
        f"{boot['connections_opened']} connections ({boot['statements_by_query']})."
    )


def _roundtrips(r: dict[str, Any]) -> str:
    rows = [[shape, s["posts"], s["claims"], s["round_trips"], s["warm_up_round_trips"], s["round_trips_per_post"],
             s["round_trips_per_post_steady"], s["round_trips_by_query"]] for shape, s in
            (("spread", r["spread"]), ("burst", r["burst"]))]
    return "\n\n".join([
        "Counted on the wire by bench/proxy.py from the daemon being ready to the last outcome written. "
        "*spread*: posts due one by one, each claimed and recorded alone (the worst case); *burst*: all due at "
        "one instant. Warm-up: a new pooled connection's one-off Parse/Describe and type introspection.",
        table(("shape", "posts", "claims", "round trips", "of which warm-up", "per post",
               "per post, steady", "by statement"), rows),
    ])


def _instant_rows(runs: Iterable[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    rows = []
    for label, d in runs:
        late = d["lateness_ms"]
        rows.append([label, d["posts"], d["accounts"], d["concurrency"], late.get("p50"), late.get("p99"),
                     late.get("max"), d["arrived"], d["duplicates"], d["outcomes_written_s"], d["cpu_ms_per_post"],
                     d["statuses"]])
    return rows


INSTANT = ("run", "posts", "accounts", "SCHEDULER_CONCURRENCY", "p50 (ms)", "p99 (ms)", "max (ms)", "arrived",
           "duplicates", "all outcomes written (s)", "CPU ms/post", "rows by status")


def _claims(d: dict[str, Any]) -> str:
    claims = d["claims_asked_won_ms_end"]
    shown = ", ".join(f"{a}→{w} in {ms} ms (done at +{end} ms)" for a, w, ms, end in claims[:8])
    return f"{len(claims)} claims: {shown}{' …' if len(claims) > 8 else ''}"


def _realistic(r: dict[str, Any]) -> str:
    d, u = r["default"], r["uncapped"]
    return "\n\n".join([
        f"{d['posts']:,} webhook posts across {d['accounts']:,} accounts due at one instant; the fake platform "
        f"answers in a median {r['platform_latency_ms']:g} ms (lognormal, sigma {r['sigma']}), in its own process. "
        "Lateness: the platform received the request − due.",
        table(INSTANT, _instant_rows([("defaults", d), ("SCHEDULER_CONCURRENCY at the burst's size", u)])),
        f"Claims, defaults: {_claims(d)}.",
    ])


def _media(r: dict[str, Any]) -> str:
    d, u, p = r["default"], r["uncapped"], r["shipped_pacing"]
    return "\n\n".join([
        f"Instagram posts with one image each through the real adapter against the fake Graph API: container "
        f"creation {r['upload_ms']:g} ms, FINISHED {r['container_ms']:g} ms later, other answers lognormal; the "
        f"daemon polls every {r['poll_interval_s']:g} s (its default). Lateness: media_publish received − due.",
        table(INSTANT, _instant_rows([("Instagram pacing lifted, defaults otherwise", d),
                                      ("pacing lifted, SCHEDULER_CONCURRENCY at the burst's size", u),
                                      ("shipped pacing (5 per app, 1 per account)", p)])),
        f"Calls to the fake (pacing lifted): {d['calls']}. With the shipped pacing, {p['posts_per_s']} posts/s: "
        f"{d['posts']:,} posts would end {p['projected_last_arrival_s']} s after the instant.",
        *([_prepared(r, [("pacing lifted", d), ("cap at the burst's size", u), ("shipped pacing", p)])]
          if "prepare" in d else []),
    ])


def _prepared(r: dict[str, Any], runs: list[tuple[str, dict[str, Any]]]) -> str:
    """The prepare window's part (SCHEDULER_PREPARE_SECONDS): how far it got before the instant."""
    rows = [[label, d["prepare"]["prepared"], d["prepare"]["failed"], d["prepare"]["seconds"],
             d["prepare"]["margin_s"], d["prepare"]["calls"], d["prepare"]["calls_from_due"]] for label, d in runs]
    return "\n\n".join([
        f"Prepared ahead: the posts were inserted {r['lead_s']:g} s before their instant, inside the prepare "
        "window (SCHEDULER_PREPARE_SECONDS, 300 s by default), and the daemon created and awaited every "
        "container before it:",
        table(("run", "prepared", "failed", "preparing took (s)", "done before due (s)", "calls before due",
               "calls from due on"), rows),
    ])


def _replicas(r: dict[str, Any]) -> str:
    rows = [[run["processes"], run["posts"], run["posts_per_s"], run["lateness_ms"].get("p50"),
             run["last_arrival_s"], run["outcomes_written_s"], run["duplicates"], run["arrived"],
             run["published_by_instance"], run.get("cpu", {}).get("summary", "–")] for run in r["runs"]]
    rates = r["median_posts_per_s"]
    return "\n\n".join([
        f"{r['posts']:,} webhook posts due at one instant (zero-latency receiver), delivered by `scheduler-daemon run` "
        "processes on one database, runs alternating.",
        table(("processes", "posts", "posts/s", "p50 lateness (ms)", "last arrival (s)", "all published (s)",
               "duplicates", "arrived", "published by instance",
               "burst CPU s: daemons / PostgreSQL / receiver / other"), rows),
        f"Median: 1 process {_cell(rates['1'])} posts/s, 2 processes {_cell(rates['2'])} posts/s: "
        f"{_cell(r['speedup'])}×.",
    ])


def _concurrency(r: dict[str, Any]) -> str:
    daemon = [[f"daemon ({'TLS' if d['tls'] else 'plain HTTP'}, {d['loop']})", d["in_flight"], d["rss_before_mib"],
               d["rss_in_flight_mib"], d["kib_per_request"], d["fds_before"], d["fds_in_flight"],
               d["fds_per_request"], d["sink_connections"], d["all_in_flight_s"], d["cpu_ms_per_request"]]
              for d in r["daemon_in_flight"]]
    bare = [[f"bare {b['client']} ({b['versions']}, {b['loop'].split('.')[0]})", b["in_flight"], b["rss_before_mib"],
             b["rss_in_flight_mib"],
             b["kib_per_request"], b["fds_before"], b["fds_in_flight"], b["fds_per_request"], b["sink_connections"],
             b["wall_s"], b["cpu_ms_per_request"]] for b in r["bare_in_flight"]]

    def protocol_rows(runs: list[dict[str, Any]]) -> list[list[Any]]:
        return [[b["client"], b["versions"], b["sink"], b["requests"], b["concurrency"], b["wall_s"],
                 b["requests_per_s"], b["cpu_ms_per_request"], b["sink_cpu_ms_per_request"], b["peak_rss_mib"],
                 b["sink_connections"], b["errors"]] for b in runs]

    protocol = ("client", "versions", "sink", "requests", "concurrency", "wall (s)", "requests/s",
                "client CPU ms/request", "sink CPU ms/request", "client peak RSS (MiB)", "connections", "errors")
    return "\n\n".join([
        "Requests held open by a sink that answers only once all are in flight (TLS unless said); memory and "
        "file descriptors of the client process from /proc, before the burst and with every request in flight.",
        table(("client", "in flight", "RSS before (MiB)", "RSS in flight (MiB)", "KiB per request sent", "fds before",
               "fds in flight", "fds per request", "sink connections", "all in flight after (s)",
               "CPU ms/request"), daemon + bare),
        "HTTP/2 against HTTP/1.1 to one host over TLS, bare clients in their own processes. Zero latency, "
        f"concurrency {ZERO_LATENCY_CONCURRENCY_SHOWN}:",
        table(protocol, protocol_rows(r["zero_latency"])),
        f"At the platforms' latency (median {r['platform_latency_ms']:g} ms), every request sent at once:",
        table(protocol, protocol_rows(r["platform_latency"])),
    ])


ZERO_LATENCY_CONCURRENCY_SHOWN = 100


def _profile(r: dict[str, Any]) -> str:
    parts = [f"py-spy at {r['rate_hz']} Hz on the bench process (the daemon runs in it), from every post armed to "
             "every outcome written; idle samples are not recorded. Each sample counts once, in the first category "
             "any of its frames matches (in this order)."]
    runs = r["runs"]
    rows = []
    for n, (name, what, needed) in enumerate(
            (c["category"], c["what"], c["needed_at_the_instant"]) for c in runs[0]["categories"]):
        rows.append([name, what, "yes" if needed else "no", *(run["categories"][n]["percent"] for run in runs)])
    parts.append(table(("category", "what", "needed at the instant?",
                        *(f"% of CPU, {run['burst']}" for run in runs)), rows))
    parts.append(table(("burst", "posts", "SCHEDULER_CONCURRENCY", "samples", "CPU (s)", "CPU ms/post",
                        "GC (ms)", "GC % of CPU", "GC collections by generation", "last arrival (s)", "claims"),
                       [[run["burst"], run["posts"], run["concurrency"], run["samples"], run["cpu_s"],
                         run["cpu_ms_per_post"], run["gc_ms"], run["gc_percent_of_cpu"], run["gc_collections"],
                         run["last_arrival_s"], len(run["claims_asked_won_ms_end"])] for run in runs]))
    for run in runs:
        parts.append(f"Top frames, {run['burst']} burst (% of samples):")
        top = max(len(run["top_self"]), len(run["top_total"]))
        parts.append(table(("self", "%", "total", "%"), [
            [*(run["top_self"][i] if i < len(run["top_self"]) else ["", None]),
             *(run["top_total"][i] if i < len(run["top_total"]) else ["", None])] for i in range(top)]))
    return "\n\n".join(parts)


def _speedups(r: dict[str, Any]) -> str:
    parts = []
    if r.get("comparison"):
        parts.append(table(("figure", "asyncio", "uvloop"),
                           [[c["figure"], c["asyncio"], c["uvloop"]] for c in r["comparison"]]))
    elif "uvloop" in r:
        parts.append(f"uvloop: {r['uvloop']}")
    o = r["orjson"]
    if "orjson_us_per_publish" in o:
        parts.append(
            f"JSON work of one publish: {o['json_us_per_publish']} µs with json, {o['orjson_us_per_publish']} µs "
            f"with orjson: {o['saved_us_per_publish']} µs saved, "
            f"{_cell(o.get('saved_percent_of_cpu_per_post'))}% of the CPU one post costs in the burst."
        )
    else:
        parts.append(f"orjson: {o.get('orjson')}; json: {o['json_us_per_publish']} µs per publish")
    return "\n\n".join(parts)


def _linear(r: dict[str, Any]) -> str:
    n = r["n"]
    rows = [[x["function"], x["input"], x["ms_small"], x["ms_big"], x["ratio"]] for x in r["rows"]]
    head = (f"Each function on adversarial text of {n:,} and {10 * n:,} characters (bench/scenarios/linear.py); "
            "CPU ms, best of 3; linear is a ratio of about 10, quadratic about 100.")
    return head + "\n\n" + table(("function", "input", f"ms at {n:,}", f"ms at {10 * n:,}", "ratio"), rows)


SECTIONS = {
    "lateness": ("1. Lateness", _lateness),
    "burst": ("2. Burst", _burst),
    "schedule": ("3. A big schedule", _schedule),
    "registration": ("4. Registration", _registration),
    "idle": ("5. Idle", _idle),
    "roundtrips": ("6. Round trips per published post", _roundtrips),
    "speedups": ("7. uvloop and orjson", _speedups),
    "realistic": ("8. Realistic burst", _realistic),
    "media": ("9. Media burst", _media),
    "replicas": ("10. Replicas", _replicas),
    "concurrency": ("11. The concurrency model", _concurrency),
    "profile": ("12. Profile of the burst", _profile),
    "linear": ("13. Linear work on the loop", _linear),
}


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "# Benchmark results",
        "",
        f"Generated by `{results['command']}` on {results['started']} ({results['mode']} run, "
        f"{results['duration_s']:.0f} s). Do not edit by hand: rerun the bench. Method: bench/README.md.",
        "",
        "## Machine",
        "",
        table(
            ("", ""),
            [
                (
                    "revision",
                    f"{m.get('revision', 'unknown')} at the start, {m.get('revision_at_end', 'unknown')} at the end",
                ),
                (
                    "CPU",
                    f"{m['cpu']}, {m['cores']} cores (load average (1, 5, 15 min) when the bench started: "
                    f"{m.get('load_average_at_start')}, when it ended: {m.get('load_average_at_end', 'not recorded')}; "
                    "other engineers share the machine)",
                ),
                (
                    "speed",
                    f"a 10M-iteration pure-Python loop took {m.get('calibration_s_at_start', '–')} s of CPU at the "
                    f"start and {m.get('calibration_s_at_end', '–')} s at the end (compare runs with it)",
                ),
                ("memory", f"{m['memory_gib']} GiB"),
                ("OS", m["os"]),
                ("Python", m["python"]),
                ("PostgreSQL", f"{m['postgresql']} ({m['postgresql_source']}), {m['postgresql_settings']}"),
                ("packages", ", ".join(f"{k} {v}" for k, v in m["packages"].items())),
                ("sharing", m["sharing"]),
            ],
        ),
        "",
        "## Targets",
        "",
        _targets(results),
    ]
    for name, scenario in results["scenarios"].items():
        title, render_one = SECTIONS[name]
        out += ["", f"## {title}", ""]
        if "error" in scenario:
            out.append(f"**Failed:**\n\n```\n{scenario['error']}\n```")
        else:
            out.append(render_one(scenario))
    if ANALYSIS.exists() and results["mode"] == "full":
        out += ["", ANALYSIS.read_text().strip()]
    return "\n".join(out) + "\n"
