"""What a person sees: a progress bar per model on a terminal, plain log lines otherwise,
a summary at the end; `--json` prints the summary as JSON on stdout instead. As with dbt,
`--quiet` keeps only what went wrong (errors, blocked models, rejects), and `--log-format json`
writes every log line as one JSON object (ts, level, msg, and the model's figures)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def utc_text(value) -> str:
    """A time for people: '2026-12-06 14:02:31 UTC' (the state schema keeps UTC without a zone)."""
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 with its offset, for --json: the state schema keeps UTC without a zone."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def human_duration(seconds: float | None) -> str:
    """A duration for people: '0.4s', '42s', '3m 05s', '2h 04m', '3d 0h'."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _concurrency(transport: dict) -> str:
    """The concurrency the run chose, for the last line: the most requests its limit allowed in
    flight (of --concurrency) and the latency it measured."""
    peak = transport.get("concurrency_peak")
    if not transport.get("requests") or peak is None:
        return ""
    latency = transport.get("latency_ms")
    return (f", concurrency up to {peak} of {transport.get('concurrency_ceiling')}"
            + (f" at {latency:,.0f} ms a request" if latency is not None else ""))


class Reporter:
    def __init__(self, *, json_mode: bool = False, progress: bool | None = None, stream=None,
                 dry_run: bool = False, quiet: bool = False, log_format: str = "text") -> None:
        self.stream = stream or sys.stderr
        console = Console(file=self.stream, highlight=False, soft_wrap=True)
        if not console.is_terminal:  # logs and CI: wide enough for model names, no wrapping tables
            console = Console(file=self.stream, highlight=False, soft_wrap=True, width=140)
        self.console = console
        self.json_mode = json_mode
        self.dry_run = dry_run  # a dry run says what it would send, never "accepted"
        self.quiet = quiet
        self.json_lines = log_format == "json"
        self.progress_enabled = (self.console.is_terminal if progress is None else progress) and not (
            quiet or self.json_lines)
        self._progress: Progress | None = None

    def _line(self, message: str, level: str = "info", **fields) -> None:
        if self.quiet and level == "info":
            return
        if self.json_lines:
            record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": level,
                      "msg": message, **fields}
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()
            return
        self.console.print(f"{time.strftime('%H:%M:%S')}  {message}", markup=False)

    def note(self, message: str) -> None:
        self._line(message, "warn" if message.startswith("warning:") else "info")

    def blocked(self, result) -> None:
        tests = f" (failing: {', '.join(result.failing_tests)})" if result.failing_tests else ""
        self._line(f"{result.model}: BLOCKED, not synced: {result.message}{tests}", "warn", model=result.model)

    def model_started(self, model) -> Callable:
        label = f"{model.name} ({model.event_name or model.kind})"
        if not self.progress_enabled:
            self._line(f"{label}: syncing")
            return lambda result: None
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=None),
                TextColumn(
                    "{task.fields[scanned]:>10,} scanned {task.fields[accepted]:>10,} "
                    + ("would send " if self.dry_run else "accepted ")
                    + "{task.fields[rejected]:>7,} rejected {task.fields[rate]:>8} rows/s"
                ),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        progress = self._progress
        task = progress.add_task(label, total=None, scanned=0, accepted=0, rejected=0, rate="-")
        started = time.monotonic()

        def update(result) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task,
                scanned=result.rows_scanned,
                accepted=result.items_sent if self.dry_run else result.items_accepted,
                rejected=result.rejected,
                rate=f"{result.rows_scanned / elapsed:,.0f}",
            )

        return update

    def model_done(self, result) -> None:
        if self._progress is not None:
            return
        figures = {"model": result.model, "status": result.status, "changed": result.changed,
                   "would_send" if self.dry_run else "accepted": result.items_sent if self.dry_run
                   else result.items_accepted, "rejected": result.rejected, "held": result.held,
                   "skipped": result.skipped, "undelivered": result.undelivered}
        self._line(
            f"{result.model}: {result.status}: {result.changed} changed rows, "
            + (f"{result.items_sent} would be sent, " if self.dry_run else f"{result.items_accepted} accepted, ")
            + f"{result.rejected} rejected, {result.held} held, {result.skipped} skipped, "
            f"{result.undelivered} undelivered"
            + (f", {result.waiting} waiting for their person's first identify" if result.waiting else "")
            + (f" ({result.message})" if result.message else ""),
            "info" if result.status == "success" else "warn",
            **figures,
        )

    def finish(self, summary, results_path=None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.quiet or self.json_lines:
            self._finish_lines(summary, results_path)
            return
        if not self.json_mode:
            self._table(summary)
        for r in summary.results:
            for reject in r.reject_sample[:5]:
                where = f"row {reject.row_key}" + (f", column {reject.column}" if reject.column else "")
                self.console.print(f"  {r.model}: {where}: {reject.reason}: {reject.message}", markup=False)
            if r.rejected > 5:
                self.console.print(
                    f"  {r.model}: ... {r.rejected - 5} more (reasons: {dict(r.reject_reasons)})", markup=False
                )
        if summary.dry_run and not self.json_mode:
            for r in summary.results:
                if r.preview is not None:  # a preview of one person: every item it would send
                    for item in r.preview:
                        self.console.print(f"  {r.model}: {item.decode()}", markup=False)
                elif r.first_item is not None:
                    text = r.first_item.decode()
                    self.console.print(
                        f"  {r.model}, first item: {text[:400]}{' ...' if len(text) > 400 else ''}", markup=False
                    )
        transport = summary.transport
        self.console.print(
            ("dry run, nothing sent: would send " if summary.dry_run else "")
            + f"{transport.get('requests', 0):,} requests, {transport.get('bytes_sent', 0):,} bytes in "
            f"{summary.elapsed:.1f}s{_concurrency(transport)}; exit code {summary.exit_code}"
            + (f"; results: {results_path}" if results_path else ""),
            markup=False,
        )

    def _finish_lines(self, summary, results_path) -> None:
        """The end of a run as log lines: each reject of the sample (a warning) and the totals."""
        for r in summary.results:
            for reject in r.reject_sample[:5]:
                where = f"row {reject.row_key}" + (f", column {reject.column}" if reject.column else "")
                self._line(f"{r.model}: {where}: {reject.reason}: {reject.message}", "warn", model=r.model,
                           row_key=reject.row_key, column=reject.column, reason=reject.reason)
            if r.rejected > 5:
                self._line(f"{r.model}: ... {r.rejected - 5} more (reasons: {dict(r.reject_reasons)})", "warn",
                           model=r.model, reject_reasons=dict(r.reject_reasons))
        transport = summary.transport
        self._line(
            ("dry run, nothing sent: would send " if summary.dry_run else "")
            + f"{transport.get('requests', 0):,} requests, {transport.get('bytes_sent', 0):,} bytes in "
            f"{summary.elapsed:.1f}s{_concurrency(transport)}; exit code {summary.exit_code}"
            + (f"; results: {results_path}" if results_path else ""),
            "info", exit_code=summary.exit_code, requests=transport.get("requests", 0),
            concurrency=transport.get("concurrency_peak"),
            bytes_sent=transport.get("bytes_sent", 0), results=str(results_path) if results_path else None,
        )

    def _table(self, summary) -> None:
        title = "cio-export" + (" (dry run: nothing sent)" if summary.dry_run else "")
        table = Table(title=title, title_justify="left")
        sent = "would send" if summary.dry_run else "accepted"
        columns = ("model", "status", "changed", sent, "rejected", "held", "skipped", "undelivered")
        for column in columns:
            table.add_column(column, justify="left" if column in ("model", "status") else "right")
        for r in summary.results:
            counts = (r.changed, r.items_sent if summary.dry_run else r.items_accepted, r.rejected, r.held,
                      r.skipped, r.undelivered)
            table.add_row(r.model, r.status, *(f"{n:,}" for n in counts))
        self.console.print(table)
        if any(r.skipped for r in summary.results):
            self.console.print(
                "skipped: events older than initial_window on a model's first sync (baseline) or older than "
                "max_event_age (backfill): recorded, never sent",
                markup=False,
            )

    def error(self, message: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.json_lines:
            self._line(message, "error")
            return
        self.console.print(f"error: {message}", markup=False, style="red")
