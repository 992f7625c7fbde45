"""The dbt package at production size: the generated messy shop (bench/shop.py) built by the
package on PostgreSQL and DuckDB, beside the copy floor of the same run.

    make bench                                        # runs this after bench/run.py
    .venv/bin/python bench/package.py --customers 1000000 [--adapters postgres,duckdb]
    .venv/bin/python bench/package.py --customers 50000 --doc /tmp/package.md   # a quick look

For each adapter, in one run:

1. generate the shop in schema cio_shop_src (1,000,000 customers: 10,000,000 orders,
   ~15,000,000 lines, 3,000,000 checkouts, 300,000 subscription rows, 200,000 refunds);
2. the copy floor: each input copied once with CREATE TABLE AS SELECT *, one after the other;
3. `dbt build --select package:cio_sync` of integration_tests over it (the package's models and
   tests, 4 threads as the example profile says), timed as a process, with the time of every
   model and test from run_results.json;
4. the shop changes as between two scheduled builds (bench/shop.py `changes`: 1% new orders
   with their lines, 1% new checkouts, 0.5% of customers changed, and a few of everything
   else), then the same `dbt build` again: the incremental rebuild.

PostgreSQL: temp-file bytes (pg_stat_database) and peak memory of its processes (summed
proportional set size, sampled every 500 ms) during each build. DuckDB runs inside dbt: the
dbt process's peak RSS (sampled every 100 ms). Results go to bench/out/package.json and to the package section of the
report (docs/benchmarks.md at 1,000,000 customers, else bench/out/benchmarks-package.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PROJECT = ROOT / "integration_tests"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))

from shop import NOW, TABLES, TIMEZONE, Shop  # noqa: E402

SOURCE, TARGET, COPIES = "cio_shop_src", "cio_shop", "cio_shop_copy"
STATE = "cio_shop_state"
BEGIN, END = "<!-- package benchmark: begin -->", "<!-- package benchmark: end -->"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- warehouses


class Postgres:
    kind = "postgres"

    def __init__(self) -> None:
        import psycopg2

        self.conn = psycopg2.connect(
            host=os.environ.get("PGHOST", "127.0.0.1"), port=int(os.environ.get("PGPORT", "5432")),
            user=os.environ.get("PGUSER", "postgres"), password=os.environ.get("PGPASSWORD", ""),
            dbname=os.environ.get("PGDATABASE", "test"))
        self.conn.autocommit = True

    def run(self, sql: str) -> list[tuple]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def reset(self) -> None:
        for schema in (SOURCE, TARGET, COPIES, STATE):
            self.run(f"drop schema if exists {schema} cascade")
        self.run(f"create schema {SOURCE}")

    def temp_bytes(self) -> int:
        return int(self.run("select sum(temp_bytes) from pg_stat_database")[0][0] or 0)

    def env(self) -> dict[str, str]:
        return {"CIO_TEST_SCHEMA": TARGET}

    def target(self) -> str:
        return "postgres"

    def close(self) -> None:
        self.conn.close()


class DuckDB:
    kind = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, sql: str) -> list[tuple]:
        import duckdb

        with duckdb.connect(str(self.path)) as conn:
            return conn.execute(sql).fetchall()

    def run_all(self, statements: list[str]) -> None:
        import duckdb

        with duckdb.connect(str(self.path)) as conn:
            for sql in statements:
                conn.execute(sql)

    def reset(self) -> None:
        for suffix in ("", ".wal"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        self.run(f"create schema {SOURCE}")

    def temp_bytes(self) -> int:
        return 0

    def env(self) -> dict[str, str]:
        return {"CIO_TEST_SCHEMA": TARGET, "CIO_DUCKDB_PATH": str(self.path)}

    def target(self) -> str:
        return "duckdb"

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------- measuring


def postgres_pss_kb() -> int:
    """Proportional set size of every postgres process, summed (shared memory counted once)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def rss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS:")), 0)


class PeakSampler(threading.Thread):
    def __init__(self, sample, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.sample, self.interval, self.peak = sample, interval, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.sample())
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join(5)
        return self.peak


def dbt_vars() -> dict:
    return {
        **{f"cio_{table[4:]}": f"{SOURCE}.{table}" for table in TABLES},
        "cio_source_timezone": TIMEZONE,
        "cio_now": NOW,
        "cio_test_email_domains": ["myshop.test"],
        "cio_max_quarantine_share": 0.2,
        "cio_state_schema": STATE,
        "cio_subscription_object_type_id": "1",
        "cio_using_devices": True,
    }


def dbt_build(wh, workdir: Path, label: str, timeout: float) -> dict:
    """One `dbt build` of the package over the shop, as a process; its figures."""
    cmd = [str(BIN / "dbt"), "build", "--select", "package:cio_sync", "--project-dir", str(PROJECT),
           "--profiles-dir", str(PROJECT), "--target", wh.target(), "--target-path", str(workdir / "target"),
           "--log-path", str(workdir / "logs"), "--vars", json.dumps(dbt_vars())]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **wh.env()}
    temp0 = wh.temp_bytes()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Summing PostgreSQL's processes reads every one's page tables: every 0.5 s (a tenth of a
    # core at every 0.1 s, taken from the build it measures).
    sampler = (PeakSampler(postgres_pss_kb, interval=0.5) if wh.kind == "postgres"
               else PeakSampler(lambda: rss_kb(proc.pid)))
    sampler.start()
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise RuntimeError(f"{label}: dbt build did not finish in {timeout:.0f} s") from None
    finally:
        peak_kb = sampler.stop()
    seconds = time.monotonic() - started
    results = json.loads((workdir / "target" / "run_results.json").read_text())
    nodes = [{"id": r["unique_id"], "status": r["status"], "seconds": round(r.get("execution_time") or 0, 2)}
             for r in results["results"]]
    record = {
        "label": label,
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "models_seconds": round(sum(n["seconds"] for n in nodes if n["id"].startswith("model.")), 1),
        "tests_seconds": round(sum(n["seconds"] for n in nodes if n["id"].startswith("test.")), 1),
        "temp_bytes": wh.temp_bytes() - temp0 if wh.kind == "postgres" else None,
        "peak_memory_mb": round(peak_kb / 1024),
        "nodes": nodes,
        "failed": [n["id"] for n in nodes if n["status"] not in ("success", "pass")],
    }
    if proc.returncode != 0:
        record["output_tail"] = output.decode(errors="replace")[-4000:]
    log(f"  {label}: exit {proc.returncode}, {seconds:.1f} s (models {record['models_seconds']} s, tests "
        f"{record['tests_seconds']} s of thread time)")
    return record


def copy_floor(wh) -> dict:
    """Each input copied once with CREATE TABLE AS SELECT *, one after the other."""
    wh.run(f"create schema {COPIES}")
    seconds = {}
    for table in TABLES:
        started = time.monotonic()
        wh.run(f"create table {COPIES}.{table} as select * from {SOURCE}.{table}")
        seconds[table] = time.monotonic() - started
    wh.run(f"drop schema {COPIES} cascade")
    # Summed before rounding: a small shop's copies take milliseconds each.
    total = round(sum(seconds.values()), 3)
    seconds = {table: round(s, 3) for table, s in seconds.items()}
    log(f"  copy floor: {total} s {seconds}")
    return {"seconds": total, "tables": seconds}


def counts(wh) -> dict[str, int]:
    tables = ("cio_people", "cio_event_order_placed", "cio_event_checkout_started", "cio_event_cart_abandoned",
              "cio_event_replenishment_due", "cio_event_refund_issued", "cio_subscription_objects",
              "cio_subscription_relationships", "cio_devices", "cio_quarantine")
    return {t: int(wh.run(f"select count(*) from {TARGET}.{t}")[0][0]) for t in tables}


def source_rows(wh) -> dict[str, int]:
    return {t: int(wh.run(f"select count(*) from {SOURCE}.{t}")[0][0]) for t in TABLES}


def run_adapter(kind: str, shop: Shop, args) -> dict:
    log(f"{kind}: generating {shop.customers:,} customers")
    wh = Postgres() if kind == "postgres" else DuckDB(OUT / "shop.duckdb")
    workdir = OUT / f"package_{kind}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    record: dict = {"adapter": kind}
    try:
        wh.reset()
        started = time.monotonic()
        statements = shop.create(kind, SOURCE)
        if kind == "duckdb":
            wh.run_all(statements)
        else:
            for sql in statements:
                wh.run(sql)
        record["generate_seconds"] = round(time.monotonic() - started, 1)
        record["source_rows"] = source_rows(wh)
        record["copy_floor"] = copy_floor(wh)
        timeout = args.max_minutes * 60
        record["full"] = dbt_build(wh, workdir, f"{kind} full build", timeout)
        record["counts_full"] = counts(wh)
        changes = shop.changes(kind, SOURCE, 1)
        if kind == "duckdb":
            wh.run_all(changes)
        else:
            for sql in changes:
                wh.run(sql)
        record["rebuild"] = dbt_build(wh, workdir, f"{kind} rebuild after changes", timeout)
        record["counts_rebuild"] = counts(wh)
        floor = record["copy_floor"]["seconds"]
        record["full_over_floor"] = round(record["full"]["seconds"] / floor, 2)
        record["rebuild_over_full"] = round(record["rebuild"]["seconds"] / record["full"]["seconds"], 3)
        log(f"{kind}: full build {record['full_over_floor']}x the copy floor, rebuild "
            f"{record['rebuild_over_full']:.1%} of the full build")
    finally:
        if not args.keep:
            if kind == "postgres":
                for schema in (SOURCE, TARGET, STATE):
                    wh.run(f"drop schema if exists {schema} cascade")
            else:
                Path(str(wh.path)).unlink(missing_ok=True)
        wh.close()
    return record


# ---------------------------------------------------------------------------------- report


def _node_name(unique_id: str) -> str:
    return unique_id.split(".", 2)[2].split(".")[0] if unique_id.startswith("test.") else unique_id.split(".")[-1]


def render(results: dict) -> str:
    meta = results["meta"]
    lines = [BEGIN, "## The dbt package at production size", ""]
    lines.append(f"Measured by `{meta['command']}` on {meta['started'][:10]} ({meta['minutes']} minutes), commit "
                 f"`{meta['git']}`, {meta['machine']}. The generated shop (bench/shop.py): "
                 + ", ".join(f"{n:,} {t[4:].replace('_', ' ')}" for t, n in
                             results["adapters"][0]["source_rows"].items()) + " rows (duplicates included).")
    lines += ["", "| adapter | copy floor (s) | full `dbt build` (s) | × floor (target ≤ 8) | rebuild after "
              "changes (s) | % of full (target ≤ 10%) | temp files, full / rebuild | peak memory |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["adapters"]:
        temp = (f"{r['full']['temp_bytes'] / 1e9:.1f} GB / {r['rebuild']['temp_bytes'] / 1e9:.2f} GB"
                if r["full"]["temp_bytes"] is not None else "n/a")
        memory = (f"PostgreSQL {r['full']['peak_memory_mb']:,} MB" if r["adapter"] == "postgres"
                  else f"dbt with DuckDB {r['full']['peak_memory_mb']:,} MB")
        floor = r["copy_floor"]["seconds"]
        lines.append(f"| {r['adapter']} | {floor:.1f} | {r['full']['seconds']} | "
                     f"{r['full_over_floor']}× | {r['rebuild']['seconds']} | {r['rebuild_over_full']:.1%} | "
                     f"{temp} | {memory} |")
    for r in results["adapters"]:
        lines += ["", f"### Where the time goes: {r['adapter']}", "",
                  f"Thread time of the full build: models {r['full']['models_seconds']} s, tests "
                  f"{r['full']['tests_seconds']} s; of the rebuild: models {r['rebuild']['models_seconds']} s, "
                  f"tests {r['rebuild']['tests_seconds']} s (dbt runs 4 threads on 2 cores, so these add up to more "
                  "than the wall time).", "",
                  "| node | full build (s) | rebuild (s) |", "| --- | --- | --- |"]
        rebuild = {n["id"]: n["seconds"] for n in r["rebuild"]["nodes"]}
        top = sorted(r["full"]["nodes"], key=lambda n: -n["seconds"])[:args_top(results)]
        for node in top:
            lines.append(f"| {_node_name(node['id'])} | {node['seconds']} | {rebuild.get(node['id'], '')} |")
        lines += ["", "Rows: " + ", ".join(f"{t} {n:,}" for t, n in r["counts_rebuild"].items()) + "."]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def args_top(results: dict) -> int:
    return results["meta"].get("top", 15)


def write_section(section: str, doc: Path) -> None:
    """Put the section into `doc` between its markers (appended when the doc has none)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The dbt package at production size (see the top of bench/package.py)")
    p.add_argument("--customers", type=int, default=1_000_000, help="customers of the shop [1,000,000]")
    p.add_argument("--adapters", default="postgres,duckdb")
    p.add_argument("--max-minutes", type=float, default=60.0, help="time limit of one dbt build [60]")
    p.add_argument("--doc", type=Path, default=None,
                   help="report [docs/benchmarks.md at 1,000,000 customers, else bench/out/benchmarks-package.md]")
    p.add_argument("--keep", action="store_true", help="keep the generated data and builds")
    args = p.parse_args(argv)
    doc = args.doc or (ROOT / "docs" / "benchmarks.md" if args.customers >= 1_000_000
                       else OUT / "benchmarks-package.md")
    OUT.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    shop = Shop(customers=args.customers)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    results = {"meta": {"started": started.isoformat(timespec="seconds"), "customers": args.customers,
                        "git": commit, "machine": f"{os.cpu_count()} cores, {cpu}",
                        "command": "make bench" if sys.argv[1:] in ([], ["--customers", "1000000"])
                        else "bench/package.py " + " ".join(sys.argv[1:])},
               "adapters": []}
    for kind in [a.strip() for a in args.adapters.split(",") if a.strip()]:
        results["adapters"].append(run_adapter(kind, shop, args))
    results["meta"]["minutes"] = round((datetime.now(timezone.utc) - started).total_seconds() / 60, 1)
    (OUT / "package.json").write_text(json.dumps(results, indent=1))
    write_section(render(results), doc)
    log(f"results: {OUT / 'package.json'}; report: {doc}")
    failed = [r["adapter"] for r in results["adapters"] if r["full"]["exit_code"] or r["rebuild"]["exit_code"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
