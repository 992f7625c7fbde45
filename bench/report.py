"""Turns bench/out/results.json (written by bench/run.py) into the benchmark report, and
summarizes py-spy profiles. Re-render without re-running:

    .venv/bin/python bench/report.py bench/out/results.json docs/benchmarks.md
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
NOTES = BENCH / "notes.md"

# -------------------------------------------------------------------------------- profiles

# Where the main thread is, decided by the first of these frames found in a stack (most specific
# first). The main thread encodes, packs and submits; a reader thread (cio-read) fetches the next
# chunk, the state writer (cio-state) runs the state writes, sender threads (cio-track_*) send.
PHASES = (
    ("waiting for a send slot (backpressure)", ("TrackClient.submit",)),
    ("waiting for a batch's in-flight keys to commit (gated batches)", ("ModelSync._release", "StateConnection.wait")),
    ("state writes handed over / waited for", ("StateConnection.flush", "StateConnection.sync", "StateWrites._upsert",
                                               "StateWrites._stage", "StateConnection.close", "ModelSync._gate")),
    ("event baseline, in-flight recovery (before the first row)", ("StateStore.record_baseline",
                                                                   "StateStore.recover_inflight")),
    ("build proof query", ("build_proof_problem",)),
    ("waiting for the last answers (drain)", ("TrackClient.drain", "ClientSink.drain")),
    ("outcomes -> state buffers", ("OutcomeRecorder.__call__",)),
    ("waiting for the reader thread's next chunk", ("PostgresReader._stream",)),
    ("encoding items (msgspec or orjson, checks)", ("Encoder._person", "Encoder._event", "Encoder._person_checked",
                                                    "Encoder._event_checked", "Encoder._attributes", "Encoder._dump",
                                                    "Encoder._identifier", "event_ulid")),
    ("packing batches", ("BatchPacker.add", "BatchPacker.flush")),
    ("row loop itself (ModelSync._stream)", ("ModelSync._stream",)),
    ("preflight (region check)", ("TrackClient.preflight",)),
    ("opening the state (DDL, migrations)", ("StateStore.open",)),
    ("manifest, selection, adapter", ("Artifacts.load", "select_models", "open_adapter", "Exporter.plan",
                                      "relation_columns", "close_adapter")),
    ("results file, summary", ("write_results", "RunSummary.as_dict", "Reporter.finish")),
    ("rest of Exporter.run", ("Exporter.run",)),
    ("interpreter, imports, CLI", ("",)),
)


def _function(frame: str) -> str:
    """'Encoder._person (cio_sync/_encode.py:170)' -> 'Encoder._person (cio_sync/_encode.py)'."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def summarize_profile(path: Path, top: int = 12) -> dict:
    """Shares of wall time (py-spy --idle) of the main thread by phase, its top leaf functions, and
    the other threads' samples and top leaf functions: senders (cio-track_*), the reader
    (cio-read) and the state writer (cio-state)."""
    main_phase: Counter = Counter()
    main_leaf: Counter = Counter()
    leaves: dict[str, Counter] = {"sender": Counter(), "reader": Counter(), "writer": Counter()}
    totals: Counter = Counter()
    main_total = 0
    senders: set[str] = set()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        thread, _, rest = stack.partition(";")
        name = thread.split(": ", 1)[-1]
        frames = [f for f in rest.split(";") if f] if rest else []
        leaf = _function(frames[-1]) if frames else "(no Python frame)"
        if name == "MainThread":
            main_total += n
            main_leaf[leaf] += n
            joined = ";".join(frames)
            for phase, markers in PHASES:
                if any(m in joined for m in markers):
                    main_phase[phase] += n
                    break
            continue
        group = "reader" if name.startswith("cio-read") else "writer" if name.startswith("cio-state") else "sender"
        if group == "sender":
            senders.add(name)
        totals[group] += n
        leaves[group][leaf] += n
    rate = 100.0  # --rate 100

    def shares(counter: Counter, total: int) -> list:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(top)] if total else []

    return {
        "main_seconds": round(main_total / rate, 1),
        "main_phases": [(p, round(100 * n / main_total, 1)) for p, n in main_phase.most_common()] if main_total else [],
        "main_top": shares(main_leaf, main_total),
        "worker_seconds": round(totals["sender"] / rate, 1),
        "worker_threads": len(senders),
        "worker_top": shares(leaves["sender"], totals["sender"]),
        "reader_seconds": round(totals["reader"] / rate, 1),
        "reader_top": shares(leaves["reader"], totals["reader"]),
        "writer_seconds": round(totals["writer"] / rate, 1),
        "writer_top": shares(leaves["writer"], totals["writer"]),
    }


# ---------------------------------------------------------------------------------- figures


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and digits == 0:
        value = round(value)
    return f"{value:,.{digits}f}{unit}" if isinstance(value, (int, float)) else str(value)


def rate(record: dict, basis: str = "exec_time") -> float | None:
    t = record.get(basis)
    return record["items_accepted"] / t if t else None


class Figures:
    def __init__(self, results: dict) -> None:
        self.r = results
        self.runs = results.get("runs", {})

    def get(self, key: str) -> list[dict]:
        return self.runs.get(key, [])

    def m(self, key: str, field: str):
        return med([r.get(field) for r in self.get(key)])

    def mrate(self, key: str, basis: str = "exec_time"):
        return med([rate(r, basis) for r in self.get(key)])

    def prate(self, key: str):
        return med([r.get("rows_per_second") for r in self.get(key)])


def _margin(value, target, higher_is_better=True) -> str:
    if value is None or target in (None, 0):
        return "n/a"
    ratio = value / target
    if higher_is_better:
        return f"{(ratio - 1) * 100:+.0f}%"
    return f"{(1 - ratio) * 100:+.0f}% headroom" if ratio <= 1 else f"{(ratio - 1) * 100:.0f}% over"


def targets(f: Figures) -> list[tuple[str, str, str, str]]:
    """(target, measured, verdict, margin)."""
    rows = []

    def verdict(ok) -> str:
        return "n/a" if ok is None else ("**met**" if ok else "**missed**")

    def add(name, measured, ok, margin):
        rows.append((name, measured, verdict(ok), margin))

    for key, what in (("people_initial", "Initial people sync"), ("events_initial", "Initial events sync")):
        v = f.mrate(key)
        add(f"{what} ≥ 80,000 items/s end to end (state writes included)", fmt(v, 0, " items/s"),
            None if v is None else v >= 80_000, _margin(v, 80_000))
    for ms, peer, need in ((0, "identify", 50), (20, "identify", 50), (0, "batch", 1.0), (20, "batch", 2.0)):
        ours = f.mrate(f"sample_{ms}ms")
        theirs = f.prate(f"peer_{peer}_{ms}ms")
        ratio = ours / theirs if ours and theirs else None
        what = "one request per row" if peer == "identify" else "batch() of 1,000"
        add(f"≥ {need:g}× the official library, {what}, {'loopback' if ms == 0 else '20 ms latency'}",
            f"{fmt(ratio, 1, '×')} ({fmt(ours)} vs {fmt(theirs)} rows/s)",
            None if ratio is None else ratio >= need, _margin(ratio, need))
    wall = f.m("people_nochange", "wall")
    requests = max((r["server_requests"] - 1 for r in f.get("people_nochange")), default=None)
    add("No-change rerun ≤ 10 s including start-up, 0 requests",
        f"{fmt(wall, 2, ' s')}, {fmt(requests)} batch requests",
        None if wall is None else (wall <= 10 and requests == 0), _margin(wall, 10, higher_is_better=False))
    wall = f.m("people_1pct", "wall")
    exact = all(c["ok"] for c in f.r.get("checks", {}).get("people_1pct_exactly_changed", [])) \
        if f.get("people_1pct") else None
    add("1% changed: exactly the changed rows, ≤ 15 s", f"{fmt(wall, 2, ' s')}, exactly the changed rows: "
        f"{'yes' if exact else 'no' if exact is not None else 'n/a'}",
        None if wall is None else (wall <= 15 and bool(exact)), _margin(wall, 15, higher_is_better=False))
    runs = f.get("ratelimit")
    if runs:
        shares = [rate(r) / (100 * r["items_accepted"] / r["batches"]) for r in runs if r["batches"]]
        share = med(shares)
        left = sum(r["undelivered"] for r in runs)
        add("100 requests/s limit: ≥ 90% of the ceiling, no 429 left unretried",
            f"{fmt(share * 100, 1, '%')} of the ceiling; {sum(r['server_429'] for r in runs)} 429s in "
            f"{len(runs)} runs, {left} items undelivered",
            share >= 0.9 and left == 0 and all(r["exit_code"] == 0 for r in runs), _margin(share, 0.9))
    else:
        add("100 requests/s limit: ≥ 90% of the ceiling, no 429 left unretried", "not run", None, "n/a")
    runs = f.get("ratelimit_small")
    if runs:
        share = med([rate(r) / (100 * r["items_accepted"] / r["batches"]) for r in runs if r["batches"]])
        left = sum(r["undelivered"] for r in runs)
        add("(extra) the same where the limit binds: 50 KB batches, ≥ 90% of the ceiling",
            f"{fmt(share * 100, 1, '%')} of the ceiling end to end; {sum(r['server_429'] for r in runs)} 429s, "
            f"{left} undelivered",
            share >= 0.9 and left == 0 and all(r["exit_code"] == 0 for r in runs), _margin(share, 0.9))
    one = f.m("people_initial", "maxrss_mb")
    xl = f.m("people_xl", "maxrss_mb")
    peak = max([v for v in (one, xl) if v is not None], default=None)
    add("Peak memory ≤ 256 MB (whole process)", f"{fmt(one, 0, ' MB')} at {f.r['meta']['args']['rows']:,} people, "
        f"{fmt(xl, 0, ' MB')} at {f.r['meta']['args']['xl_rows']:,}",
        None if peak is None else peak <= 256, _margin(peak, 256, higher_is_better=False))
    growth = (xl / one - 1) if one and xl else None
    add("Memory at 5× the rows within 10% of 1×", fmt(None if growth is None else growth * 100, 1, "%"),
        None if growth is None else growth <= 0.10, "n/a" if growth is None else f"{(0.10 - growth) * 100:+.1f} pts")
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def export_rows(f: Figures, keys: list[tuple[str, str]]) -> str:
    header = ["scenario", "runs", "rows sent", "end to end (s)", "items/s end to end", "start-up (s)", "wall (s)",
              "items/s wall", "requests", "max RSS (MB)", "CPU s: exporter / server / PostgreSQL / machine"]
    rows = []
    for key, label in keys:
        runs = f.get(key)
        if not runs:
            continue
        rows.append([label, len(runs), fmt(f.m(key, "items_accepted")), fmt(f.m(key, "exec_time"), 2),
                     fmt(f.mrate(key)), fmt(f.m(key, "startup"), 2), fmt(f.m(key, "wall"), 2),
                     fmt(f.mrate(key, "wall")), fmt(f.m(key, "requests")), fmt(f.m(key, "maxrss_mb")),
                     f"{fmt(f.m(key, 'cpu_exporter'), 1)} / {fmt(f.m(key, 'cpu_server'), 1)} / "
                     f"{fmt(f.m(key, 'cpu_postgres'), 1)} / {fmt(f.m(key, 'cpu_machine'), 1)}"])
    return _table(header, rows)


def other_cpu(r: dict) -> float | None:
    """Machine CPU not spent by this exporter, the server or PostgreSQL during the run: other work on the
    machine (for the two shards, the other shard's exporter)."""
    if r.get("cpu_postgres") is None:
        return None
    return r["cpu_machine"] - r["cpu_exporter"] - r["cpu_server"] - r["cpu_postgres"]


def cpu_split(r: dict) -> str:
    return (f"{fmt(r.get('cpu_exporter'), 1)} / {fmt(r.get('cpu_server'), 1)} / {fmt(r.get('cpu_postgres'), 1)} / "
            f"{fmt(other_cpu(r), 1)}")


def all_runs(f: Figures) -> str:
    header = ["scenario", "run", "exit", "rows sent", "end to end (s)", "start-up (s)", "wall (s)", "requests",
              "429s (server)", "max RSS (MB)", "CPU s: exporter / server / PostgreSQL / other"]
    rows = []
    for key, runs in f.runs.items():
        for r in runs:
            if "exec_time" not in r:
                continue
            rows.append([key, r["label"], r["exit_code"], fmt(r["items_accepted"]), fmt(r["exec_time"], 2),
                         fmt(r["startup"], 2), fmt(r["wall"], 2), fmt(r["requests"]), fmt(r.get("server_429")),
                         fmt(r["maxrss_mb"]), cpu_split(r)])
    return _table(header, rows)


PACING_BEGIN, PACING_END = "<!-- pacing benchmark: begin -->", "<!-- pacing benchmark: end -->"


def pacing_section(results: dict) -> str:
    """The pacing scenario (bench/run.py `pacing`): its own section between markers, so that a run of
    that scenario alone can replace it in place (see write_pacing_section)."""
    from run import (
        PACING_BATCH_BYTES,
        PACING_BURST,
        PACING_LATENCIES,
        PACING_LIMIT,
        PACING_SHARD_LATENCY,
        PACING_SHARDS,
    )

    f = Figures(results)
    meta = results.get("meta", {})
    a = meta.get("args", {})
    lines = [PACING_BEGIN, "### Pacing: real network latency, and shards under one budget\n"]
    w = lines.append
    if not f.get("pacing_250ms") and not f.get("pacing_shards"):
        w("Not measured in this run.\n")
        w(PACING_END)
        return "\n".join(lines)
    w(f"Measured by `{meta.get('command', 'make bench')}` on {str(meta.get('started', '?'))[:10]}, commit "
      f"`{meta.get('git', {}).get('commit', '?')}`, {a.get('runs')} run(s) per row. The server adds a latency to every "
      f"answer and allows {PACING_LIMIT} requests/s (a token bucket of {PACING_BURST}, a second's worth, as for "
      "the rate-limit rows above: a client over the limit gets 429s, `Retry-After` in whole seconds). The exporter "
      "runs with its defaults "
      f"(`--rate-limit 100`, `--concurrency` 256 as the bound of the adaptive limit) but `--batch-bytes "
      f"{PACING_BATCH_BYTES}` (~29 people a request), so that the ceiling, {PACING_LIMIT} requests/s, is within "
      f"this machine's reach whatever the latency; each run syncs the {max(1, a.get('rows', 0) // 10):,} people of "
      "`bench_people_tenth` from empty state. **Share of the ceiling** = the server's batch requests per second "
      f"between the first and the last it received, over {PACING_LIMIT} (its median over the runs; the lowest in "
      "brackets); a share over 100% is the exporter's burst of a tenth of a second's worth at the start, over "
      "the span; whether the limit was exceeded is the server's 429 count. **Concurrency** = the most requests "
      "the adaptive limit allowed in flight; **held at once** = the most the server held at the same time; "
      "**measured latency** = the exporter's estimate at the end of the run (the server's latency, plus TLS and "
      "the time the exporter and the server wait for the machine's two cores).\n")
    rows = []
    keys = [(f"pacing_{int(t * 1000)}ms", f"{int(t * 1000)} ms", "defaults") for t in PACING_LATENCIES]
    keys.append((f"pacing_{int(PACING_SHARD_LATENCY * 1000)}ms_c8", f"{int(PACING_SHARD_LATENCY * 1000)} ms",
                 "`--concurrency 8` (the old fixed default)"))
    for key, latency, settings in keys:
        runs = f.get(key)
        if not runs:
            continue
        shares = [r["pacing_share"] for r in runs]
        rows.append([latency, settings, len(runs), f"{fmt(med(shares) * 100, 1)}% ({fmt(min(shares) * 100, 1)}%)",
                     fmt(f.m(key, "server_batch_rate"), 1), fmt(sum(r["server_429"] for r in runs)),
                     fmt(sum(r["undelivered"] + max(0, r["changed"] - r["server_accepted"]) for r in runs)),
                     fmt(f.m(key, "concurrency_peak")), fmt(f.m(key, "server_max_in_flight")),
                     fmt(f.m(key, "latency_ms")), fmt(f.m(key, "exec_time"), 2)])
    w(_table(["latency", "settings", "runs", "share of the ceiling", "requests/s", "429s (all runs)",
              "undelivered (all runs)", "concurrency", "held at once", "measured latency (ms)", "end to end (s)"],
             rows) + "\n")
    w(_table(["target", "measured", "verdict"], pacing_targets(f, results)) + "\n")
    shards = f.get("pacing_shards")
    if shards:
        by_rep: dict[str, list[dict]] = {}
        for r in shards:
            by_rep.setdefault(r["label"].rsplit("#", 1)[1], []).append(r)
        srows = []
        for rep, rs in by_rep.items():
            first = rs[0]
            srows.append([rep, f"{first['all_pacing_share'] * 100:.1f}%", fmt(first["all_server_batch_rate"], 1),
                          " / ".join(fmt(r["items_accepted"]) for r in rs), fmt(first["server_429"]),
                          fmt(sum(r["undelivered"] for r in rs)), " / ".join(fmt(r["concurrency_peak"]) for r in rs),
                          " / ".join(fmt(r["rate_claims"]) for r in rs), fmt(first["both_wall"], 2)])
        w(f"{PACING_SHARDS} shards (`--shard K/{PACING_SHARDS}`, {int(PACING_SHARD_LATENCY * 1000)} ms) started "
          f"together, sharing one budget of {PACING_LIMIT} requests/s through the state schema (each claims its "
          "requests from `cio_rate_budget`): the server's batch requests per second over all four, from the "
          "first request of any to the last of any, against the budget.\n")
        w(_table(["run", "share of the budget (all shards)", "requests/s (all)", "accepted per shard", "429s",
                  "undelivered", "concurrency per shard", "claims per shard", "wall, all four (s)"], srows) + "\n")
    w(PACING_END)
    return "\n".join(lines)


def pacing_targets(f: Figures, results: dict) -> list[list[str]]:
    """The pacing targets: at least 90% of the ceiling at every latency with default settings, never
    above it (no 429), no 429 left unretried, nothing undelivered; four shards likewise under one budget."""
    from run import PACING_LATENCIES

    rows = []
    keys = [f"pacing_{int(t * 1000)}ms" for t in PACING_LATENCIES]
    singles = [r for key in keys for r in f.get(key)]
    shards = f.get("pacing_shards")
    if singles:  # the median of each latency's runs, as every target of this file; the lowest run beside it
        medians = {key: med([r["pacing_share"] for r in f.get(key)]) for key in keys if f.get(key)}
        low = min(medians.values())
        lowest = min(singles, key=lambda r: r["pacing_share"])
        rows.append(["≥ 90% of the ceiling at 100, 250 and 1,000 ms, defaults (median of the runs)",
                     f"lowest median {low:.1%} (lowest run {lowest['pacing_share']:.1%}, {lowest['label']})",
                     "**met**" if low >= 0.9 else "**missed**"])
    if shards:
        by_run = {r["label"].rsplit("#", 1)[1]: r["all_pacing_share"] for r in shards}
        low = med(list(by_run.values()))
        rows.append(["four shards: ≥ 90% of one budget together (median of the runs)",
                     f"{low:.1%} (lowest run {min(by_run.values()):.1%})", "**met**" if low >= 0.9 else "**missed**"])
    runs = singles + shards
    if runs:
        over = sum(r["server_429"] for r in singles) + sum({r["label"].rsplit("#", 1)[1]: r["server_429"]
                                                            for r in shards}.values())
        rows.append(["never above the limit: no 429 from the server", f"{over} 429s", "**met**" if not over
                     else "**missed**"])
        lost = sum(r["undelivered"] + max(0, r["changed"] - r["items_accepted"]) for r in runs)
        failed = sum(r["exit_code"] != 0 for r in runs)
        rows.append(["no 429 left unretried, nothing undelivered (exit 0)", f"{lost} undelivered, {failed} runs not "
                     "exit 0", "**met**" if not lost and not failed else "**missed**"])
    return rows


def write_pacing_section(results: dict, doc: Path) -> None:
    """Put the pacing section into `doc` in place of the one there (appended when it has none)."""
    section = pacing_section(results)
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if PACING_BEGIN in text and PACING_END in text:
        text = text[:text.index(PACING_BEGIN)] + section + text[text.index(PACING_END) + len(PACING_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


def write_report(results: dict, doc: Path, command: str = "make bench") -> None:
    f = Figures(results)
    meta = results["meta"]
    a = meta["args"]
    m, v, g = meta["machine"], meta["versions"], meta.get("git", {})
    lines: list[str] = []
    w = lines.append
    w("# Benchmarks\n")
    w(f"Measured by `{command}` on {meta['started'][:10]} ({meta.get('minutes', '?')} minutes), commit "
      f"`{g.get('commit', '?')}`" + (f" with uncommitted exporter changes ({', '.join(g['exporter_changes'])})"
                                     if g.get("exporter_changes") else "") + ". "
      "This file is written by the benchmark itself (bench/run.py, bench/report.py); the analysis section comes "
      "from bench/notes.md. Raw figures of every run: `bench/out/results.json` (not committed).\n")
    end = meta.get("git_end") or {}
    if end.get("commit") and end.get("commit") != g.get("commit"):
        changed = end.get("changed_since_start") or []
        w(f"Other work was committed while the benchmark ran (HEAD moved to `{end['commit']}`; the package is "
          "installed editable, so later runs used it): exporter files changed: "
          + (", ".join(f"`{c}`" for c in changed) if changed else "none") + ".\n")
    w("## Reproduce\n")
    w("```sh\nmake bench                     # full size, 12–25 minutes on 2 cores; rewrites this file\n"
      "make bench BENCH_ROWS=100000   # quick mode, a few minutes; writes bench/out/benchmarks.md\n```\n")
    w(f"This run: `{command}`. Needs the local PostgreSQL (PG* variables). Nothing leaves the machine: "
      "the Track API is the project's Customer.io-compatible server (`cio_sync.fake_server`), started as a child "
      "process on 127.0.0.1 over HTTPS with a throwaway CA, recording what it accepts to disk.\n")
    w("## Machine and versions\n")
    w(f"- {m['cores']} cores, {m['cpu']} ({m.get('cpu_mhz')} MHz), {m['memory_gib']} GiB memory, Linux "
      f"{m['kernel']}. PostgreSQL, the server and the exporter all share the {m['cores']} cores.")
    w(f"- Python {v['python']}, PostgreSQL {v['postgresql']}, cio-sync {v.get('cio-sync')}, dbt-core "
      f"{v.get('dbt-core')}, dbt-postgres {v.get('dbt-postgres')}, dbt-adapters {v.get('dbt-adapters')}, "
      f"psycopg2 {v.get('psycopg2-binary')}, httpx {v.get('httpx')}, orjson {v.get('orjson')}, uvicorn "
      f"{v.get('uvicorn')} (server), customerio {v.get('customerio')} with requests {v.get('requests')} "
      f"(peers), py-spy {v.get('py-spy')}.\n")
    w("## What is measured\n")
    w(f"- Data: {a['rows']:,} people with 12 typed attributes (4 text, 2 integer, 2 numeric, 2 boolean, 2 "
      f"timestamps, some nulls; identify items of ~340 bytes), {a['event_rows']:,} events of one model with 5 "
      f"attributes (~250 bytes), {a['xl_rows']:,} people for the memory figure, generated with SQL "
      "(`bench/sql/`). The models (`bench/dbt/`) are views over them with `meta.cio`, tag `bench`, the "
      "package's `record_build()` post-hook, state in schema `cio_bench_state`.")
    w("- Every figure is the median of the runs listed (min/max per run in the last table). Each initial sync "
      "starts from empty state (state tables truncated, dbt's build proofs kept) and an empty server.")
    w("- `cio-export run --select <model> --state-schema cio_bench_state --no-progress --json`, as users run "
      "it (default `--concurrency 8`, `--rate-limit 100`, `--batch-bytes 500000`).")
    w("- **End to end** = first row read to last state commit: the model's `timing.end_to_end_seconds` in the "
      "JSON summary (from the moment the first rows arrive from the warehouse until every batch is answered and "
      "the state it produced is committed; for a run that sends nothing, the model's whole `execution_time`). "
      "**Start-up** = process wall time − end to end: interpreter and "
      "imports, dbt project/profile, manifest, selection, preflight (region check over HTTPS), connections, "
      "state DDL, the model's build proof and the warehouse's work until its first rows, and at exit the results "
      "file (the summary's `timing` splits it). **Wall** = the process, measured by the parent.")
    w("- Memory: peak RSS of the cio-export process from the kernel (`wait4` ru_maxrss), with /proc VmRSS "
      "sampled every 20 ms to split start-up from streaming. CPU: the exporter's user+system time (wait4), "
      "the server's (/proc), and the whole machine's busy time (/proc/stat), so PostgreSQL ≈ machine − "
      "exporter − server.")
    w("- Before a rerun, the state tables are ANALYZEd (what autovacuum does within a minute of the initial "
      "sync's million-row write; a scheduled rerun finds them analyzed).\n")

    w("## Targets\n")
    w(_table(["target", "measured (median)", "verdict", "margin"], [list(t) for t in targets(f)]) + "\n")

    w("## Figures\n")
    w("### People, events, objects, relationships, devices, rate limit, shards\n")
    w(export_rows(f, [
        ("people_initial", f"1. initial people ({a['rows']:,})"),
        ("people_nochange", "2. rerun, no change"),
        ("people_1pct", "2. rerun, 1% changed"),
        ("events_initial", f"3. initial events ({a['event_rows']:,})"),
        ("events_1pct", "3. rerun, 1% new events"),
        ("objects_initial", f"3b. initial objects ({a['rows']:,})"),
        ("objects_nochange", "3b. objects, rerun, no change"),
        ("objects_removals", "3b. objects, 1% removed (deleted)"),
        ("relationships_initial", f"3b. initial relationships ({a['rows']:,})"),
        ("relationships_nochange", "3b. relationships, rerun, no change"),
        ("relationships_removals", "3b. relationships, 1% removed"),
        ("devices_initial", f"3b. initial devices ({a['rows']:,})"),
        ("devices_nochange", "3b. devices, rerun, no change"),
        ("devices_removals", "3b. devices, 1% removed"),
        ("ratelimit", "4. people, 100 req/s limit"),
        ("ratelimit_small", "4. (extra) 100 req/s, 50 KB batches"),
        ("ratelimit_small_nolimit", "4. (control) no limit, 50 KB batches"),
        ("shards", "shards (each of 2 in parallel)"),
        ("sample_0ms", f"5. cio-export on the {a['sample_rows']:,}-row sample"),
        ("sample_20ms", "5. same, 20 ms latency"),
        ("people_xl", f"6. people ({a['xl_rows']:,}), memory"),
    ]) + "\n")
    runs = f.get("people_initial")
    if runs:
        r0 = runs[0]
        w(f"Initial people sync: {fmt(f.m('people_initial', 'batches'))} batches of "
          f"{fmt(med([r['items_accepted'] / r['batches'] for r in runs if r['batches']]))} items "
          f"({fmt(med([r['bytes_sent'] / r['requests'] for r in runs if r['requests'] > 1]) )} bytes) per request; "
          f"start-up {fmt(f.m('people_initial', 'startup'), 2)} s of which "
          f"{fmt(f.m('people_initial', 'outside_run'), 2)} s before/after `Exporter.run` (imports, CLI, dbt "
          f"context, results file) and {fmt(f.m('people_initial', 'setup_in_run'), 2)} s inside it (manifest, "
          f"selection, preflight, connections, state DDL, then the build proof and the warehouse until the first "
          f"rows: {fmt(f.m('people_initial', 'before_first_row'), 2)} s); the model's whole `execution_time` "
          f"{fmt(f.m('people_initial', 'model_time'), 2)} s. Exit code of every run: "
          f"{sorted({r['exit_code'] for rs in f.runs.values() for r in rs})}.\n")
        del r0
    rl = f.get("ratelimit")
    if rl:
        per_batch = med([r["items_accepted"] / r["batches"] for r in rl if r["batches"]])
        w(f"Rate limit (server `rate_limit=100`, exporter `--rate-limit 100`): ceiling = 100 × {fmt(per_batch)} "
          f"items per batch = {fmt(100 * per_batch)} items/s; achieved {fmt(f.mrate('ratelimit'))} items/s end to "
          f"end ({fmt(100 * f.mrate('ratelimit') / (100 * per_batch), 1)}%); 429s sent by the server per run: "
          f"{[r['server_429'] for r in rl]}, seen by cio-export: {[r['client_429'] for r in rl]}, retries: "
          f"{[r['retries'] for r in rl]}, undelivered: {[r['undelivered'] for r in rl]}. Requests per second "
          f"achieved: {fmt(med([r['requests'] / r['exec_time'] for r in rl if r['exec_time']]), 1)}.\n")
    rs = f.get("ratelimit_small")
    if rs:
        per_batch = med([r["items_accepted"] / r["batches"] for r in rs if r["batches"]])
        rps = med([(r["requests"] - 1) / r["exec_time"] for r in rs if r["exec_time"]])
        achieved = f.mrate("ratelimit_small")
        control_rps = med([(r["requests"] - 1) / r["exec_time"]
                           for r in f.get("ratelimit_small_nolimit") if r["exec_time"]])
        w(f"Where the limit binds (`--batch-bytes 50000` on the first {a['rows'] // 10:,} people): ceiling = 100 × "
          f"{fmt(per_batch)} items per batch = {fmt(100 * per_batch)} items/s; achieved {fmt(achieved)} "
          f"items/s end to end ({fmt(100 * achieved / (100 * per_batch), 1)}%), {fmt(rps, 1)} "
          f"requests/s; 429s per run: {[r['server_429'] for r in rs]}, undelivered: "
          f"{[r['undelivered'] for r in rs]}. Control, the same batches with no limit on either side: "
          f"{fmt(f.mrate('ratelimit_small_nolimit'))} items/s end to end, {fmt(control_rps, 1)}"
          " requests/s.\n")
    sh = f.get("shards")
    if sh:
        both = med([r["both_wall"] for r in sh])
        w(f"Shards: `--shard 0/2` and `--shard 1/2` started together against one server: "
          f"{a['rows']:,} people in {fmt(both, 2)} s for both processes (wall, start-up included) = "
          f"{fmt(a['rows'] / both if both else None)} items/s, against "
          f"{fmt(f.m('people_initial', 'wall'), 2)} s ({fmt(f.mrate('people_initial', 'wall'))} items/s) for one "
          f"unsharded process. Per shard median: {fmt(f.m('shards', 'items_accepted'))} rows, "
          f"{fmt(f.m('shards', 'exec_time'), 2)} s end to end, {fmt(f.m('shards', 'maxrss_mb'))} MB.\n")

    w("### The official `customerio` library on the same rows\n")
    w(f"Sample: the first {a['sample_rows']:,} people (same 12 attributes), read from PostgreSQL inside each "
      "script; every script single-threaded, as typically written (`bench/peers.py`); the library trusts the "
      "server's CA through `REQUESTS_CA_BUNDLE`. cio-export runs on the same rows (model `bench_people_sample`) "
      "from empty state. Peer time = from the query to the last answer (its interpreter start-up not counted, "
      f"like cio-export's end to end). With 20 ms latency the one-request-per-row script sends the first "
      f"{a['peer_latency_rows']:,} rows of the sample only (a request costs the same at every row; the whole "
      "sample would take 7+ minutes per run).\n")
    header = ["", "loopback rows/s", "20 ms latency rows/s"]
    prow = []
    for key, label in (("identify", "customerio `identify()` per row"), ("batch", "customerio `batch()` × 1,000")):
        prow.append([label, fmt(f.prate(f"peer_{key}_0ms")), fmt(f.prate(f"peer_{key}_20ms"))])
    prow.append(["cio-export, end to end", fmt(f.mrate("sample_0ms")), fmt(f.mrate("sample_20ms"))])
    prow.append(["cio-export, whole process (start-up included)", fmt(f.mrate("sample_0ms", "wall")),
                 fmt(f.mrate("sample_20ms", "wall"))])
    for key, label in (("identify", "ratio vs per-row"), ("batch", "ratio vs batch()")):
        cells = [label]
        for ms in (0, 20):
            ours, theirs = f.mrate(f"sample_{ms}ms"), f.prate(f"peer_{key}_{ms}ms")
            ours_wall = f.mrate(f"sample_{ms}ms", "wall")
            cells.append(f"{fmt(ours / theirs if ours and theirs else None, 1, '×')} end to end, "
                         f"{fmt(ours_wall / theirs if ours_wall and theirs else None, 1, '×')} whole process")
        prow.append(cells)
    w(_table(header, prow) + "\n")

    w("### Memory\n")
    xl = f.get("people_xl")
    w(_table(["people", "peak RSS (wait4)", "RSS when streaming starts", "peak RSS while streaming",
              "growth while streaming"], [
        [f"{a[key]:,}", fmt(f.m(scen, "maxrss_mb"), 0, " MB"), fmt(f.m(scen, "rss_stream_start_mb"), 0, " MB"),
         fmt(f.m(scen, "rss_stream_peak_mb"), 0, " MB"),
         fmt(med([(r["rss_stream_peak_mb"] or 0) - (r["rss_stream_start_mb"] or 0) for r in f.get(scen)]), 0, " MB")
         if f.get(scen) else "n/a"]
        for key, scen in (("rows", "people_initial"), ("xl_rows", "people_xl")) if f.get(scen)]) + "\n")
    if not xl:
        w("The larger run did not happen (see 'Not measured').\n")

    w(pacing_section(results) + "\n")
    w("## Where the time goes (py-spy)\n")
    prof = results.get("profile", {})
    if not prof:
        w("No profile in this run.\n")
    for name, p in prof.items():
        if "error" in p:
            w(f"{name}: {p['error']}\n")
            continue
        run = p.get("run", {})
        gil = p.get("mode") == "--gil"
        w(f"**{name}**: one initial sync under `py-spy record {p.get('mode', '--idle')} --threads --rate 100` "
          f"({fmt(run.get('items_accepted'))} items, {fmt(run.get('exec_time'), 1)} s end to end under the "
          f"profiler, {fmt(run.get('wall'), 1)} s wall). "
          + (f"Only samples of a thread holding the GIL: {p['main_seconds']} s on the main thread, "
             f"{p.get('worker_seconds')} s on the sender threads. Main thread's share of its GIL time:\n" if gil else
             f"Main thread ({p['main_seconds']} s of samples, waits included), share of wall time by what it "
             "was doing:\n"))
        w(_table(["main thread phase", "share"], [[ph, f"{s}%"] for ph, s in p["main_phases"]]) + "\n")
        w("Main thread, top functions where samples ended (self time" + (")" if gil else ", waits included)")
          + ":\n")
        w(_table(["function", "share"], [[f"`{fn}`", f"{s}%"] for fn, s in p["main_top"][:10]]) + "\n")
        w(f"Sender threads ({p['worker_threads']}), top functions"
          + (" (GIL held):\n" if gil else " (all their samples; `_worker` = idle in the pool):\n"))
        w(_table(["function", "share"], [[f"`{fn}`", f"{s}%"] for fn, s in p["worker_top"][:8]]) + "\n")
        for group, title in (("writer", "State writer thread (cio-state)"), ("reader", "Reader thread (cio-read)")):
            if p.get(f"{group}_top"):
                w(f"{title}: {p[f'{group}_seconds']} s of samples" + (" (GIL held)" if gil else ", waits included")
                  + ", top functions:\n")
                w(_table(["function", "share"], [[f"`{fn}`", f"{s}%"] for fn, s in p[f"{group}_top"][:6]]) + "\n")

    w("## Analysis\n")
    w(NOTES.read_text().strip() + "\n" if NOTES.exists() else "(bench/notes.md is missing)\n")

    w("## Checks\n")
    checks = results.get("checks", {})
    w(_table(["check", "result", "detail (last run)"], [
        [name, "ok" if all(c["ok"] for c in cs) else f"FAILED {sum(not c['ok'] for c in cs)} of {len(cs)}",
         cs[-1]["detail"]] for name, cs in checks.items()]) + "\n")
    w("## Not measured\n")
    skipped = results.get("skipped", [])
    w("\n".join(f"- {s}" for s in skipped) + "\n" if skipped else "Everything listed above was measured in this "
      "run.\n")
    w("## Every run\n")
    w(f"Setup: data generated in {results.get('setup', {}).get('generate_seconds')} s, dbt deps + build in "
      f"{results.get('setup', {}).get('dbt_build_seconds')} s; time per scenario (s): "
      f"{results.get('scenario_seconds', {})}.\n")
    w(all_runs(f) + "\n")
    peers = [[key, r["label"], fmt(r["rows"]), fmt(r["seconds"], 2), fmt(r["rows_per_second"]), r["errors"]]
             for key, rs in f.runs.items() if key.startswith("peer_") for r in rs]
    if peers:
        w(_table(["peer", "run", "rows", "seconds", "rows/s", "errors"], peers) + "\n")
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    # The package's section is bench/package.py's (make bench runs it next): kept as it stands,
    # with the reading written by hand after it.
    from package import BEGIN

    old = doc.read_text() if doc.exists() else ""
    if BEGIN in old:
        text = text.rstrip("\n") + "\n\n" + old[old.index(BEGIN):].rstrip("\n") + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH / "out" / "results.json"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else BENCH / "out" / "benchmarks.md"
    data = json.loads(source.read_text())
    write_report(data, target, command=sys.argv[3] if len(sys.argv) > 3 else "make bench")
    print(target)
