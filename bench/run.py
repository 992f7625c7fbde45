"""cio_sync benchmark runner.

How to run it (from the repository root):

    make bench                        # full size: 1,000,000 people and events, 5,000,000 people
                                      # for the memory figure; writes docs/benchmarks.md (~12–25 min)
    make bench BENCH_ROWS=100000      # quick mode: a few minutes; writes bench/out/benchmarks.md

or directly, with the project's venv:

    .venv/bin/python bench/run.py --rows 1000000 [--runs 3] [--scenarios people,events,...]

It needs the local PostgreSQL of the standard PG* variables (defaults 127.0.0.1:5432, user
postgres, database test) and `customerio` + `py-spy` (the `bench` extra). It never contacts
Customer.io: everything is sent to the project's Customer.io-compatible server, started here as
a child process on 127.0.0.1 over HTTPS with a throwaway local CA.

What it does:

1. generates the data with SQL (generate_series) in schema cio_bench_src: people with 12 typed
   attributes, more people for the memory figure, and events;
2. `dbt build`s bench/dbt (views with meta.cio over those tables, the package installed with
   `local:`, so its on-run-start and its record_build() post-hook are the real ones);
3. runs `cio-export run --select ... --state-schema cio_bench_state --no-progress --json` as a
   subprocess, as users run it, for every scenario (each figure is the median of --runs runs),
   sampling the process's memory from /proc and reading its JSON summary;
4. runs the peers (bench/peers.py: the official `customerio` library, one identify per row and
   batch() of 1,000) on the same sample and the same server;
5. profiles one 1M-people and one 1M-events run with py-spy;
6. drops its schemas, writes bench/out/results.json and the report (bench/report.py):
   docs/benchmarks.md at full size, bench/out/benchmarks.md otherwise (or --doc PATH).

Every loop is bounded in count, every process in time (--max-minutes for the whole run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PROJECT = BENCH / "dbt"
SQL = BENCH / "sql"
OUT = BENCH / "out"
BIN = Path(sys.executable).parent

SRC, MODELS, STATE = "cio_bench_src", "cio_bench", "cio_bench_state"
SITE, KEY = "bench-site", "bench-key-0123456789abcdef"
STATE_TABLES = ("cio_people_state", "cio_event_ledger", "cio_rejects", "cio_runs", "cio_payload_schemas",
                "cio_leases", "cio_inflight")
SCENARIOS = ("people", "events", "entities", "ratelimit", "peers", "shards", "pacing", "profile", "memory")
#: The pacing scenario: the server's latency per request, its limit (requests/s, burst), the batches' size
#: (10 KB, ~29 people: the limit's ceiling, ~2,900 items/s, is well within the machine's reach) and shards.
PACING_LATENCIES = (0.1, 0.25, 1.0)
PACING_LIMIT, PACING_BURST = 100, 100
PACING_BATCH_BYTES = 10_000
PACING_SHARDS, PACING_SHARD_LATENCY = 4, 0.25
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- PostgreSQL


class Warehouse:
    def __init__(self) -> None:
        import psycopg2

        self.conn = psycopg2.connect(
            host=os.environ.get("PGHOST", "127.0.0.1"), port=int(os.environ.get("PGPORT", "5432")),
            user=os.environ.get("PGUSER", "postgres"), password=os.environ.get("PGPASSWORD", ""),
            dbname=os.environ.get("PGDATABASE", "test"),
        )
        self.conn.autocommit = True

    def run(self, sql: str) -> list[tuple]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def one(self, sql: str):
        rows = self.run(sql)
        return rows[0][0] if rows else None

    def drop_schemas(self) -> None:
        for schema in (SRC, MODELS, STATE):
            self.run(f"drop schema if exists {schema} cascade")

    def reset_state(self) -> None:
        """Forget everything cio-export recorded (a first sync), keeping dbt's build proofs."""
        existing = [t for t in STATE_TABLES if self.one(f"select to_regclass('{STATE}.{t}')") is not None]
        if existing:
            self.run("truncate " + ", ".join(f"{STATE}.{t}" for t in existing))

    def analyze_state(self) -> None:
        """What autovacuum does within a minute of a large write: before a rerun, as the next
        scheduled run would find it."""
        for table in ("cio_people_state", "cio_event_ledger", "cio_rejects"):
            if self.one(f"select to_regclass('{STATE}.{table}')") is not None:
                self.run(f"analyze {STATE}.{table}")


def server_pacing(stats: dict) -> dict:
    """The server's view of the pace: batch requests, their rate between the first and the last
    one it received, that rate's share of the pacing limit, and the most it held at once."""
    span, count = stats.get("batch_span_seconds"), stats.get("batch_requests", 0)
    rate = (count - 1) / span if span and count > 1 else 0.0
    return {"server_batch_rate": round(rate, 2), "pacing_share": round(rate / PACING_LIMIT, 4),
            "server_batch_span": span, "server_max_in_flight": stats.get("max_in_flight")}


def sql_file(name: str, **values) -> str:
    text = (SQL / name).read_text()
    return text.format(**values)


# ------------------------------------------------------------------------------- measuring


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def process_cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_seconds() -> float | None:
    """CPU seconds of the local PostgreSQL: every live postgres process, plus what the postmaster has
    collected from backends that exited (cutime + cstime). None if the server's processes are not
    visible (another host, or not readable)."""
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        if name != "postgres":
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found = True
        total += int(fields[11]) + int(fields[12])
        if _is_postmaster(fields):
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK if found else None


def _is_postmaster(fields: list[str]) -> bool:
    """The postmaster is the postgres process whose parent is not a postgres process."""
    try:
        parent = Path(f"/proc/{fields[1]}/stat").read_text()
    except OSError:
        return True
    return parent[parent.find("(") + 1:parent.rfind(")")] != "postgres"


def child_pid(pattern: str) -> int | None:
    """Our child process whose command line contains `pattern`."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me and pattern in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


class MemoryWatch(threading.Thread):
    """Samples VmRSS / VmHWM of a process from /proc every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (monotonic, rss kB)
        self.hwm_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        path = f"/proc/{self.pid}/status"
        while not self._halt.is_set():
            try:
                text = Path(path).read_text()
            except OSError:
                return
            rss = re.search(r"VmRSS:\s+(\d+)", text)
            hwm = re.search(r"VmHWM:\s+(\d+)", text)
            if rss:
                self.samples.append((time.monotonic(), int(rss.group(1))))
            if hwm:
                self.hwm_kb = max(self.hwm_kb, int(hwm.group(1)))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


class Export:
    """One `cio-export run` process, started as users run it, measured from outside."""

    def __init__(self, bench: Bench, select: list[str], args: list[str] = (), *, label: str = "",
                 wrap: list[str] | None = None, timeout: float = 900.0) -> None:
        self.bench, self.label, self.timeout = bench, label, timeout
        self.cmd = [str(BIN / "cio-export"), "run", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
                    "--select", *select, "--state-schema", STATE, "--no-progress", "--json", *args]
        self.wrap = wrap or []
        self.stderr_lines: list[tuple[float, str]] = []
        self.stdout = b""

    def start(self) -> Export:
        env = dict(os.environ, **self.bench.credentials())
        self.machine0, self.server0 = machine_busy_seconds(), process_cpu_seconds(self.bench.server_pid)
        self.postgres0 = postgres_cpu_seconds()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.wrap + self.cmd, cwd=PROJECT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.watch = MemoryWatch(self.proc.pid)
        self.watch.start()
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()
        return self

    def _read_stdout(self) -> None:
        self.stdout = self.proc.stdout.read()

    def _read_stderr(self) -> None:
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))

    def wait(self) -> dict:
        deadline = self.t0 + self.timeout
        while True:
            pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                pid, status, rusage = os.wait4(self.proc.pid, 0)
                self.proc.returncode = -9
                raise RuntimeError(f"{self.label}: cio-export did not finish in {self.timeout:.0f} s; killed")
            time.sleep(0.005)
        wall = time.monotonic() - self.t0
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        machine = machine_busy_seconds() - self.machine0
        server = process_cpu_seconds(self.bench.server_pid) - self.server0
        postgres = postgres_cpu_seconds()
        self.postgres = None if postgres is None or self.postgres0 is None else postgres - self.postgres0
        self.watch.stop()
        for reader in self._readers:
            reader.join(10)
        return self._record(wall, rusage, machine, server)

    def _summary(self) -> dict:
        text = self.stdout.decode(errors="replace")
        start = text.find("{")
        try:
            return json.loads(text[start:]) if start >= 0 else {}
        except json.JSONDecodeError:
            results = PROJECT / "target" / "cio_export_results.json"
            return json.loads(results.read_text()) if results.exists() else {}

    def _record(self, wall: float, rusage, machine_cpu: float, server_cpu: float) -> dict:
        summary = self._summary()
        results = summary.get("results") or []
        transport = summary.get("transport") or {}
        # End to end as the issue defines it: first row read to last state commit (per model, from
        # the summary's timing); the model's whole execution_time is kept beside it.
        # A model that sent nothing (a no-change rerun) has no such span worth the name: its whole
        # execution_time (mostly the warehouse's diff) stands in for it.
        exec_time = sum(((r.get("timing") or {}).get("end_to_end_seconds") if r.get("items_sent")
                         else r.get("execution_time")) or 0 for r in results)
        model_time = sum(r.get("execution_time") or 0 for r in results)
        timing = summary.get("timing") or {}
        elapsed = summary.get("elapsed_time") or 0.0
        stream_start = next((t for t, line in self.stderr_lines if line.endswith(": syncing")), None)
        stream_end = next((t for t, line in self.stderr_lines if stream_start and t >= stream_start
                           and re.search(r": (success|rejected|undelivered|blocked|locked|skipped): ", line)), None)
        samples = self.watch.samples
        before = [kb for t, kb in samples if stream_start is None or t < stream_start]
        during = [kb for t, kb in samples if stream_start is not None and stream_start <= t <= (stream_end or 1e18)]
        record = {
            "label": self.label,
            "exit_code": self.proc.returncode,
            "wall": round(wall, 3),
            "elapsed_time": elapsed,
            "exec_time": round(exec_time, 3),
            "model_time": round(model_time, 3),
            "before_first_row": round(sum((r.get("timing") or {}).get("before_first_row_seconds") or 0
                                          for r in results), 3),
            "tail": round(sum((r.get("timing") or {}).get("tail_seconds") or 0 for r in results), 3),
            "run_timing": timing,
            "startup": round(wall - exec_time, 3),
            "setup_in_run": round(elapsed - exec_time, 3),
            "outside_run": round(wall - elapsed, 3),
            "status": ",".join(r.get("status", "?") for r in results),
            "rows_scanned": sum(r.get("rows_scanned", 0) for r in results),
            "changed": sum(r.get("changed", 0) for r in results),
            "items_sent": sum(r.get("items_sent", 0) for r in results),
            "items_accepted": sum(r.get("items_accepted", 0) for r in results),
            "rejected": sum(r.get("rejected", 0) for r in results),
            "undelivered": sum(r.get("undelivered", 0) for r in results),
            "skipped": sum(r.get("skipped", 0) for r in results),
            "batches": sum(r.get("batches", 0) for r in results),
            "requests": transport.get("requests", 0),
            "retries": transport.get("retries", 0),
            "client_429": transport.get("rate_limited", 0),
            "bytes_sent": transport.get("bytes_sent", 0),
            "concurrency_peak": transport.get("concurrency_peak"),
            "concurrency_end": transport.get("concurrency"),
            "in_flight_peak": transport.get("in_flight_peak"),
            "latency_ms": transport.get("latency_ms"),
            "rate_claims": transport.get("rate_claims"),
            "maxrss_mb": round(rusage.ru_maxrss / 1024, 1),
            "hwm_sampled_mb": round(self.watch.hwm_kb / 1024, 1),
            "rss_startup_peak_mb": round(max(before) / 1024, 1) if before else None,
            "rss_stream_start_mb": round(before[-1] / 1024, 1) if before else None,
            "rss_stream_peak_mb": round(max(during) / 1024, 1) if during else None,
            "cpu_exporter": round(rusage.ru_utime + rusage.ru_stime, 2),
            "cpu_server": round(server_cpu, 2),
            "cpu_machine": round(machine_cpu, 2),
            "cpu_postgres": None if self.postgres is None else round(self.postgres, 2),
            "error": summary.get("error"),
        }
        if self.proc.returncode not in (0,) or not summary:
            tail = "\n".join(line for _, line in self.stderr_lines[-15:])
            record["stderr_tail"] = tail[-3000:]
        return record


# -------------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.wh = Warehouse()
        self.srv = None
        self.server_pid: int | None = None
        self.results: dict = {"runs": {}, "checks": {}, "notes": [], "skipped": []}
        self.deadline = time.monotonic() + args.max_minutes * 60

    # -- plumbing ------------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        return {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": self.srv.url,
                "CUSTOMERIO_CA_BUNDLE": self.srv.ca_bundle}

    def timeout(self, rows: int) -> float:
        return 300.0 + rows / 2_000

    def add(self, scenario: str, record: dict) -> dict:
        self.results["runs"].setdefault(scenario, []).append(record)
        rate = record["items_accepted"] / record["exec_time"] if record.get("exec_time") else 0
        log(f"  {scenario}: {record['label']}: exit {record['exit_code']}, {record['items_accepted']:,} accepted "
            f"of {record['changed']:,} changed, {record['exec_time']:.2f} s end to end ({rate:,.0f}/s), "
            f"wall {record['wall']:.2f} s, max RSS {record['maxrss_mb']} MB")
        if record["exit_code"] != 0:
            log(f"  !! exit {record['exit_code']}: {record.get('error')}\n{record.get('stderr_tail', '')}")
        return record

    def export(self, scenario: str, select: str, label: str, rows: int, args: list[str] = (),
               **kwargs) -> dict:
        self.srv.reset()
        record = Export(self, [select], list(args), label=label, timeout=self.timeout(rows), **kwargs).start().wait()
        stats = self.srv.stats()
        record["server_requests"] = stats["requests"]
        record["server_batch_requests"] = sum(r["path"] == "/api/v2/batch" for r in self.srv.requests()) \
            if stats["requests"] <= 1000 else None
        record["server_429"] = stats["rate_limited"]
        record["server_accepted"] = sum(stats["items_accepted"].values())
        record["server_by_status"] = stats["requests_by_status"]
        record.update(server_pacing(stats))
        return self.add(scenario, record)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.results["checks"].setdefault(name, []).append({"ok": bool(ok), "detail": detail})
        if not ok:
            log(f"  !! check failed: {name}: {detail}")

    def time_left(self, scenario: str) -> bool:
        if time.monotonic() < self.deadline:
            return True
        self.results["skipped"].append(f"{scenario}: --max-minutes {self.args.max_minutes} reached")
        log(f"skipping {scenario}: out of time")
        return False

    def accepted_ids(self) -> list[str]:
        """Identifiers (people) or event ids of the items the server accepted since its last reset."""
        out = []
        with open(self.srv.record_file, "rb") as handle:
            for line in handle:
                item = json.loads(line)
                out.append(item.get("id") if item.get("action") == "event" else item["identifiers"]["id"])
        return out

    # -- setup -----------------------------------------------------------------------------------
    def generate(self) -> None:
        a = self.args
        t = time.monotonic()
        self.wh.drop_schemas()
        self.wh.run(f"create schema {SRC}")
        self.wh.run(sql_file("people.sql", schema=SRC, table="people", rows=a.rows))
        self.wh.run(f"create table {SRC}.events as "
                    + sql_file("events_rows.sql", first=1, last=a.event_rows, people=a.rows))
        self.wh.run(f"alter table {SRC}.events add primary key (n)")
        self.wh.run(f"analyze {SRC}.events")
        # Objects, relationships and devices: one each per person, over a table of their own
        # (the entities scenario removes 1% of its rows and puts them back).
        self.wh.run(f"create table {SRC}.entities as select n, person_id, first_name, plan, city, lifetime_value, "
                    f"created_at, last_order_at from {SRC}.people")
        self.wh.run(f"alter table {SRC}.entities add primary key (n)")
        self.wh.run(f"analyze {SRC}.entities")
        if "memory" in a.scenarios:
            self.wh.run(sql_file("people.sql", schema=SRC, table="people_xl", rows=a.xl_rows))
        else:  # the model must still build
            self.wh.run(sql_file("people.sql", schema=SRC, table="people_xl", rows=1))
        self.results["setup"] = {"generate_seconds": round(time.monotonic() - t, 1)}
        log(f"generated {a.rows:,} people, {a.event_rows:,} events, {a.xl_rows:,} more people in "
            f"{self.results['setup']['generate_seconds']} s")

    def dbt_build(self) -> None:
        env = dict(os.environ, DBT_PROFILES_DIR=str(PROJECT), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
        t = time.monotonic()
        for cmd in (["deps", "--quiet"], ["build", "--select", "tag:bench",
                                          "--vars", json.dumps({"bench_sample_rows": self.args.sample_rows,
                                                                "bench_tenth_rows": self.args.rows // 10})]):
            proc = subprocess.run([str(BIN / "dbt"), *cmd], cwd=PROJECT, env=env, capture_output=True, text=True,
                                  timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"dbt {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        self.results["setup"]["dbt_build_seconds"] = round(time.monotonic() - t, 1)
        log(f"dbt deps + build: {self.results['setup']['dbt_build_seconds']} s")

    def start_server(self) -> None:
        from cio_sync.fake_server import FakeCustomerIO

        record_dir = OUT / "server"
        shutil.rmtree(record_dir, ignore_errors=True)
        record_dir.mkdir(parents=True)
        self.srv = FakeCustomerIO(site_id=SITE, api_key=KEY, tls=True, in_process=False, record="disk",
                                  record_dir=record_dir).start()
        self.server_pid = child_pid("cio_sync.fake_server")
        log(f"server: {self.srv.url} (pid {self.server_pid}, disk recording, TLS with a local CA)")

    # -- scenarios -------------------------------------------------------------------------------
    def people(self) -> None:
        """1. initial sync; 2. no-change rerun, 1% changed rerun."""
        a, wh = self.args, self.wh
        for rep in range(a.runs):
            if not self.time_left("people"):
                return
            wh.reset_state()
            r = self.export("people_initial", "bench_people", f"initial #{rep + 1}", a.rows)
            self.check("people_initial_all_accepted", r["items_accepted"] == a.rows and r["server_accepted"] == a.rows,
                       f"{r['items_accepted']} accepted by cio-export, {r['server_accepted']} by the server, "
                       f"of {a.rows}")
            wh.analyze_state()
            r = self.export("people_nochange", "bench_people", f"no change #{rep + 1}", a.rows)
            batch_requests = r["server_requests"] - 1  # the preflight GET /api/v1/accounts/region
            self.check("people_nochange_zero_requests", batch_requests == 0 and r["items_sent"] == 0,
                       f"{batch_requests} batch requests, {r['items_sent']} items sent")
            changed = sorted(row[0] for row in wh.run(sql_file("people_change.sql", schema=SRC, slice=rep % 100)))
            r = self.export("people_1pct", "bench_people", f"1% changed #{rep + 1}", a.rows)
            sent = sorted(self.accepted_ids())
            self.check("people_1pct_exactly_changed", sent == changed and r["items_accepted"] == len(changed),
                       f"{len(changed)} rows changed, {r['items_accepted']} accepted by cio-export, {len(sent)} "
                       f"received by the server, same ids: {sent == changed}")
            wh.analyze_state()

    def people_first(self) -> None:
        """Before an events sync, untimed: the people of the events synced, as in a project where
        people go first (an event of a person Customer.io never identified waits for them), so the
        events' query meets a full people state."""
        record = Export(self, ["bench_people"], label="people first",
                        timeout=self.timeout(self.args.rows)).start().wait()
        self.check("events_people_first", record["exit_code"] == 0, f"people sync before the events: exit "
                   f"{record['exit_code']}")

    def events(self) -> None:
        """3. initial sync of one event model; rerun with 1% new events."""
        a, wh = self.args, self.wh
        new = max(1, a.event_rows // 100)
        for rep in range(a.runs):
            if not self.time_left("events"):
                return
            wh.reset_state()
            self.people_first()
            r = self.export("events_initial", "bench_events", f"initial #{rep + 1}", a.event_rows)
            self.check("events_initial_all_accepted",
                       r["items_accepted"] == a.event_rows and r["server_accepted"] == a.event_rows,
                       f"{r['items_accepted']} accepted by cio-export, {r['server_accepted']} by the server, "
                       f"of {a.event_rows}")
            wh.analyze_state()
            first = a.event_rows + 1 + rep * new
            wh.run(f"insert into {SRC}.events "
                   + sql_file("events_rows.sql", first=first, last=first + new - 1, people=a.rows))
            r = self.export("events_1pct", "bench_events", f"1% new #{rep + 1}", a.event_rows)
            sent = len(self.accepted_ids())
            ledger = wh.one(f"select count(*) from {STATE}.cio_event_ledger where model = 'bench_events' and "
                            f"status = 'sent' and event_key in (select event_id from {SRC}.events where n >= {first})")
            self.check("events_1pct_exactly_new", r["items_accepted"] == new and sent == new and ledger == new,
                       f"{new} new events, {r['items_accepted']} accepted by cio-export, {sent} received by the "
                       f"server, {ledger} recorded as sent")
            wh.run(f"delete from {SRC}.events where n > {a.event_rows}")

    def entities(self) -> None:
        """3b. objects, relationships and devices, one per person each: initial sync, no-change
        rerun, and 1% of them leaving the model (removed: on_delete delete)."""
        a, wh = self.args, self.wh
        for rep in range(a.runs):
            if not self.time_left("entities"):
                return
            wh.reset_state()
            for kind in ("objects", "relationships", "devices"):
                model = f"bench_{kind}"
                r = self.export(f"{kind}_initial", model, f"initial #{rep + 1}", a.rows)
                self.check(f"{kind}_initial_all_accepted",
                           r["items_accepted"] == a.rows and r["server_accepted"] == a.rows,
                           f"{r['items_accepted']} accepted by cio-export, {r['server_accepted']} by the server, "
                           f"of {a.rows}")
                wh.analyze_state()
                r = self.export(f"{kind}_nochange", model, f"no change #{rep + 1}", a.rows)
                self.check(f"{kind}_nochange_nothing_sent", r["items_sent"] == 0, f"{r['items_sent']} items sent")
            removed = wh.one(f"select count(*) from {SRC}.entities where n % 100 = {rep % 100}")
            wh.run(f"create table {SRC}.entities_removed as select * from {SRC}.entities where n % 100 = {rep % 100}")
            wh.run(f"delete from {SRC}.entities where n % 100 = {rep % 100}")
            try:
                for kind in ("objects", "relationships", "devices"):
                    r = self.export(f"{kind}_removals", f"bench_{kind}", f"1% removed #{rep + 1}", a.rows)
                    self.check(f"{kind}_removals_exactly_removed",
                               r["items_accepted"] == removed and r["server_accepted"] == removed,
                               f"{removed} rows left, {r['items_accepted']} removals accepted by cio-export, "
                               f"{r['server_accepted']} by the server")
            finally:
                wh.run(f"insert into {SRC}.entities select * from {SRC}.entities_removed")
                wh.run(f"drop table {SRC}.entities_removed")

    def ratelimit(self) -> None:
        """4. the server allows 100 requests/s; cio-export is told --rate-limit 100."""
        a, wh = self.args, self.wh
        self.srv.configure(rate_limit=100)
        try:
            for rep in range(a.runs):
                if not self.time_left("ratelimit"):
                    return
                wh.reset_state()
                r = self.export("ratelimit", "bench_people", f"100 req/s #{rep + 1}", a.rows,
                                ["--rate-limit", "100"])
                self.check("ratelimit_no_429_left", r["exit_code"] == 0 and r["undelivered"] == 0
                           and r["server_accepted"] == a.rows,
                           f"exit {r['exit_code']}, {r['undelivered']} undelivered, {r['server_429']} 429s sent by "
                           f"the server ({r['client_429']} seen by cio-export), {r['server_accepted']} accepted")
            # The same limit where it binds: batches of ~50 KB (~145 items) put the ceiling (~14,500
            # items/s) under what cio-export reaches unthrottled, so this measures the limiter itself.
            tenth = max(1, a.rows // 10)
            for rep in range(a.runs):
                if not self.time_left("ratelimit"):
                    return
                wh.reset_state()
                r = self.export("ratelimit_small", "bench_people_tenth", f"100 req/s, 50 KB batches #{rep + 1}",
                                tenth, ["--rate-limit", "100", "--batch-bytes", "50000"])
                self.check("ratelimit_no_429_left", r["exit_code"] == 0 and r["undelivered"] == 0
                           and r["server_accepted"] == tenth,
                           f"exit {r['exit_code']}, {r['undelivered']} undelivered, {r['server_429']} 429s sent by "
                           f"the server ({r['client_429']} seen by cio-export), {r['server_accepted']} accepted")
        finally:
            self.srv.configure(rate_limit=None)
        # Control: the same small batches with neither limit, to tell the limiter's cost from the
        # exporter's own speed with small batches.
        for rep in range(a.runs):
            if not self.time_left("ratelimit"):
                return
            wh.reset_state()
            self.export("ratelimit_small_nolimit", "bench_people_tenth", f"no limit, 50 KB batches #{rep + 1}",
                        tenth, ["--rate-limit", "100000", "--batch-bytes", "50000"])

    def peer(self, mode: str, latency: float, rep: int, max_rows: int | None) -> dict:
        self.srv.reset()
        env = dict(os.environ, REQUESTS_CA_BUNDLE=self.srv.ca_bundle)
        cmd = [str(BIN / "python"), str(BENCH / "peers.py"), "--mode", mode, "--url", self.srv.url,
               "--site-id", SITE, "--api-key", KEY, "--rows", str(self.args.sample_rows),
               "--max-seconds", str(self.args.peer_max_seconds)]
        if max_rows:
            cmd += ["--max-rows", str(max_rows)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=self.args.peer_max_seconds + 120)
        try:
            record = json.loads(proc.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise RuntimeError(f"peer {mode} failed: {proc.stdout[-1000:]} {proc.stderr[-2000:]}") from None
        record.update(label=f"{mode}, latency {latency * 1000:.0f} ms #{rep + 1}", exit_code=proc.returncode,
                      server_accepted=sum(self.srv.stats()["items_accepted"].values()))
        self.check("peers_all_accepted", record["server_accepted"] == record["rows"] and record["errors"] == 0,
                   f"{record['label']}: {record['rows']} sent, {record['server_accepted']} accepted, "
                   f"{record['errors']} errors")
        key = f"peer_{mode}_{int(latency * 1000)}ms"
        self.results["runs"].setdefault(key, []).append(record)
        log(f"  {key}: {record['label']}: {record['rows']:,} rows in {record['seconds']:.2f} s "
            f"({record['rows_per_second']:,.0f} rows/s)")
        return record

    def peers(self) -> None:
        """5. the official library on the sample, and cio-export on the same rows, on loopback and
        with 20 ms of added server latency."""
        a, wh = self.args, self.wh
        try:
            for latency in (0.0, 0.02):
                self.srv.configure(latency=latency)
                ms = int(latency * 1000)
                for rep in range(a.runs):
                    if not self.time_left("peers"):
                        return
                    self.peer("identify", latency, rep, a.peer_latency_rows if latency else None)
                    self.peer("batch", latency, rep, None)
                    wh.reset_state()
                    r = self.export(f"sample_{ms}ms", "bench_people_sample", f"sample, latency {ms} ms #{rep + 1}",
                                    a.sample_rows)
                    self.check("sample_all_accepted", r["server_accepted"] == a.sample_rows,
                               f"{r['server_accepted']} of {a.sample_rows} accepted")
        finally:
            self.srv.configure(latency=0.0)

    def shards(self) -> None:
        """--shard 0/2 and 1/2 in parallel on the same people, against one server."""
        a, wh = self.args, self.wh
        for rep in range(a.runs):
            if not self.time_left("shards"):
                return
            wh.reset_state()
            self.srv.reset()
            t = time.monotonic()
            runs = [Export(self, ["bench_people"], ["--shard", f"{k}/2"], label=f"shard {k}/2 #{rep + 1}",
                           timeout=self.timeout(a.rows)).start() for k in range(2)]
            records = [run.wait() for run in runs]
            both = time.monotonic() - t
            stats = self.srv.stats()
            for record in records:
                record["both_wall"] = round(both, 3)
                record["server_accepted_both"] = sum(stats["items_accepted"].values())
                self.add("shards", record)
            self.check("shards_all_accepted", sum(r["items_accepted"] for r in records) == a.rows
                       and record["server_accepted_both"] == a.rows,
                       f"{[r['items_accepted'] for r in records]} accepted, server {record['server_accepted_both']}")

    def pacing(self) -> None:
        """7. Real network latency: the people of bench_people_tenth at 100, 250 and 1,000 ms per
        request against a server allowing 100 requests/s (burst 100), default settings but 10 KB
        batches; the old fixed concurrency of 8 at 250 ms beside them; then four shards at once
        under one budget (250 ms). Share of the ceiling = the server's batch requests per second
        between the first and the last one it received, over 100."""
        a, wh = self.args, self.wh
        rows = max(1, a.rows // 10)
        args = ["--batch-bytes", str(PACING_BATCH_BYTES)]
        try:
            self.srv.configure(rate_limit=PACING_LIMIT, rate_limit_burst=PACING_BURST)
            runs = [(latency, f"pacing_{int(latency * 1000)}ms", []) for latency in PACING_LATENCIES]
            runs.append((PACING_SHARD_LATENCY, f"pacing_{int(PACING_SHARD_LATENCY * 1000)}ms_c8",
                         ["--concurrency", "8"]))
            for rep in range(a.runs):
                for latency, key, extra in runs:
                    if not self.time_left("pacing"):
                        return
                    self.srv.configure(latency=latency)
                    wh.reset_state()
                    label = f"{int(latency * 1000)} ms{' ' + ' '.join(extra) if extra else ''} #{rep + 1}"
                    r = self.export(key, "bench_people_tenth", label, rows, args + extra)
                    log(f"    {r['pacing_share']:.1%} of the ceiling, {r['server_429']} 429s, concurrency up to "
                        f"{r['concurrency_peak']} ({r['latency_ms']} ms), server held {r['server_max_in_flight']} "
                        "at once")
                    if not extra:
                        self.pacing_check(r, rows)
            self.srv.configure(latency=PACING_SHARD_LATENCY)
            for rep in range(a.runs):
                if not self.time_left("pacing"):
                    return
                self.pacing_shards(rows, args, rep)
        finally:
            self.srv.configure(rate_limit=None, rate_limit_burst=None, latency=0.0)

    def pacing_check(self, r: dict, rows: int) -> None:
        # (the share of the ceiling is a target, judged on the median of the runs: see the report)
        self.check("pacing_at_latency", r["exit_code"] == 0 and r["undelivered"] == 0 and r["server_429"] == 0
                   and r["server_accepted"] == rows,
                   f"{r['label']}: {r['pacing_share']:.1%} of the ceiling, exit {r['exit_code']}, "
                   f"{r['undelivered']} undelivered, {r['server_429']} 429s, {r['server_accepted']} of {rows} accepted")

    def pacing_shards(self, rows: int, args: list[str], rep: int) -> None:
        """Four shards started together against one server, one budget shared through the state."""
        self.wh.reset_state()
        self.srv.reset()
        t = time.monotonic()
        runs = [Export(self, ["bench_people_tenth"], [*args, "--shard", f"{k}/{PACING_SHARDS}"],
                       label=f"shard {k}/{PACING_SHARDS} #{rep + 1}", timeout=self.timeout(rows)).start()
                for k in range(PACING_SHARDS)]
        records = [run.wait() for run in runs]
        stats = self.srv.stats()
        together = server_pacing(stats)
        for record in records:
            record.update(both_wall=round(time.monotonic() - t, 3),
                          server_accepted_all=sum(stats["items_accepted"].values()),
                          **{f"all_{k}": v for k, v in together.items()}, server_429=stats["rate_limited"])
            self.add("pacing_shards", record)
        accepted = sum(r["items_accepted"] for r in records)
        log(f"    {PACING_SHARDS} shards: {together['pacing_share']:.1%} of the budget together, "
            f"{stats['rate_limited']} 429s, {accepted:,} accepted")
        self.check("pacing_shards_one_budget", all(r["exit_code"] == 0 for r in records) and stats["rate_limited"] == 0
                   and accepted == rows == sum(stats["items_accepted"].values()),
                   f"{together['pacing_share']:.1%} of the budget, {stats['rate_limited']} 429s, "
                   f"{[r['items_accepted'] for r in records]} accepted of {rows}")

    def profile(self) -> None:
        """py-spy on one initial 1M people run and one initial events run (sampling, 100 Hz, with
        idle frames so waits on PostgreSQL and on the server show)."""
        a, wh = self.args, self.wh
        for name, select, rows, mode in (("people", "bench_people", a.rows, "--idle"),
                                         ("events", "bench_events", a.event_rows, "--idle"),
                                         ("people, GIL holders only", "bench_people", a.rows, "--gil")):
            if not self.time_left("profile"):
                return
            wh.reset_state()
            if select == "bench_events":
                self.people_first()
            path = OUT / f"profile_{name.split(',')[0]}{'_gil' if mode == '--gil' else ''}.txt"
            wrap = [str(BIN / "py-spy"), "record", "--rate", "100", mode, "--threads", "--format", "raw",
                    "--output", str(path), "--"]
            record = self.export("profile", select, f"{name} under py-spy", rows, wrap=wrap)
            from report import summarize_profile

            self.results.setdefault("profile", {})[name] = {"run": record, "mode": mode, **summarize_profile(path)}

    def memory(self) -> None:
        """6. peak RSS at --xl-rows people (the --rows figure comes from the initial people runs)."""
        a, wh = self.args, self.wh
        for rep in range(a.xl_runs):
            if not self.time_left("memory"):
                return
            wh.reset_state()
            self.export("people_xl", "bench_people_xl", f"{a.xl_rows:,} people #{rep + 1}", a.xl_rows)

    # -- the whole run ---------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.args
        started = datetime.now(timezone.utc)
        self.results["meta"] = {"started": started.isoformat(timespec="seconds"), "args": vars(a).copy(),
                                "machine": machine_info(), "versions": versions(self.wh), "git": git_info()}
        try:
            self.generate()
            self.dbt_build()
            self.start_server()
            for scenario in SCENARIOS:
                if scenario in a.scenarios:
                    log(f"scenario {scenario}")
                    t = time.monotonic()
                    getattr(self, scenario)()
                    self.results.setdefault("scenario_seconds", {})[scenario] = round(time.monotonic() - t, 1)
        finally:
            if self.srv is not None:
                self.srv.stop()
                shutil.rmtree(OUT / "server", ignore_errors=True)
            if not a.keep:
                self.wh.drop_schemas()
            self.results["meta"]["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.results["meta"]["git_end"] = git_info(since=self.results["meta"]["git"].get("commit"))
            self.results["meta"]["minutes"] = round((datetime.now(timezone.utc) - started).total_seconds() / 60, 1)
            (OUT / "results.json").write_text(json.dumps(self.results, indent=1, default=str))
        return self.results


# ------------------------------------------------------------------------------- environment


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mhz = re.search(r"cpu MHz\s*:\s*([\d.]+)", cpuinfo)
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    return {
        "cores": os.cpu_count(),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cpu_mhz": round(float(mhz.group(1))) if mhz else None,
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "os": platform.platform(),
    }


def versions(wh: Warehouse) -> dict:
    out = {"python": platform.python_version(), "postgresql": wh.one("show server_version")}
    for dist in ("cio-sync", "dbt-core", "dbt-postgres", "dbt-adapters", "psycopg2-binary", "httpx", "orjson",
                 "uvicorn", "starlette", "customerio", "requests", "py-spy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def git_info(since: str | None = None) -> dict:
    """Read-only: which commit was measured, whether the exporter had uncommitted changes, and (at the
    end) which exporter files commits made during the run changed (the package is installed editable)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "exporter_changes": [line[3:] for line in git("status", "--porcelain", "--", "exporter").splitlines()],
            "changed_since_start": git("diff", "--name-only", since, "HEAD", "--", "exporter/cio_sync").split()
            if since else []}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="cio_sync benchmark (see the top of bench/run.py)")
    p.add_argument("--rows", type=int, default=1_000_000, help="people (and, by default, events) [1,000,000]")
    p.add_argument("--event-rows", type=int, default=None, help="events [--rows]")
    p.add_argument("--xl-rows", type=int, default=None, help="people of the memory figure [5 x --rows]")
    p.add_argument("--sample-rows", type=int, default=20_000, help="the peers' sample [20,000]")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (the median is reported) [3]")
    p.add_argument("--xl-runs", type=int, default=None, help="runs of the memory figure [--runs]")
    p.add_argument("--peer-latency-rows", type=int, default=None,
                   help="rows the one-request-per-row peer sends with 20 ms latency (~45 s per run at 2,000) "
                        "[2,000 at full size, else 500]")
    p.add_argument("--peer-max-seconds", type=float, default=120.0, help="time limit of one peer run [120]")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    p.add_argument("--max-minutes", type=float, default=60.0, help="skip the remaining scenarios after this")
    p.add_argument("--doc", type=Path, default=None,
                   help="report path [docs/benchmarks.md when --rows >= 1,000,000, else bench/out/benchmarks.md]")
    p.add_argument("--keep", action="store_true", help="keep the generated schemas (for inspection)")
    args = p.parse_args(argv)
    args.event_rows = args.event_rows or args.rows
    args.xl_rows = args.xl_rows or 5 * args.rows
    args.xl_runs = args.xl_runs or args.runs
    args.sample_rows = min(args.sample_rows, args.rows)
    args.peer_latency_rows = args.peer_latency_rows or (2_000 if args.rows >= 1_000_000 else 500)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.runs < 1 or args.runs > 20:
        p.error("--runs must be 1..20")
    missing = [what for scenario, what, there in (
        ("peers", "the customerio library", lambda: importlib.util.find_spec("customerio") is not None),
        ("profile", "py-spy", lambda: (BIN / "py-spy").exists())) if scenario in args.scenarios and not there()]
    if missing:  # found now, not after the scenarios before them have run
        p.error(f"not installed: {' and '.join(missing)}; `make bench` installs the bench extra "
                f"({BIN / 'python'} -m pip install -e '.[bench]')")
    if args.doc is None:
        args.doc = ROOT / "docs" / "benchmarks.md" if args.rows >= 1_000_000 else OUT / "benchmarks.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(BENCH))
    os.environ.setdefault("PGHOST", "127.0.0.1")
    os.environ.setdefault("PGUSER", "postgres")
    os.environ.setdefault("PGDATABASE", "test")
    for name in ("CUSTOMERIO_REGION", "REQUESTS_CA_BUNDLE", "CIO_SYNC_STATE_SCHEMA", "DBT_TARGET_PATH"):
        os.environ.pop(name, None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server and drops schemas
    bench = Bench(args)
    results = bench.run()
    from report import write_report

    if args.scenarios == ["pacing"] and args.doc.exists():  # that section alone, in place
        from report import write_pacing_section

        results["meta"]["command"] = make_command(args)
        write_pacing_section(results, args.doc)
    else:
        results["meta"]["command"] = make_command(args)
        write_report(results, args.doc, command=make_command(args))
    log(f"results: {OUT / 'results.json'}; report: {args.doc}")
    failed = [name for name, checks in results["checks"].items() if not all(c["ok"] for c in checks)]
    if failed:
        log(f"checks failed: {', '.join(failed)}")
    return 1 if failed else 0


def make_command(args: argparse.Namespace) -> str:
    if sys.argv[1:] == ["--rows", str(args.rows)]:
        return "make bench" + ("" if args.rows == 1_000_000 else f" BENCH_ROWS={args.rows}")
    return ".venv/bin/python bench/run.py " + " ".join(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
