"""Where a run's batches go: a `Sink` takes closed batches and hands back their outcomes. The
real one sends them to Customer.io's Track API (ClientSink over a TrackClient); --dry-run's writes
the exact request bodies to files and sends nothing (OutboxSink)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import orjson

from .transport import Batch, BatchOutcome, TrackClient


class Sink(Protocol):
    """What the run sends through. `tick` is called while a call waits (the lease heartbeat)."""

    @property
    def stats(self) -> dict: ...

    def submit(self, batch: Batch, model: str, tick: Callable[[], None] | None = None) -> None: ...

    def poll(self) -> list[BatchOutcome]: ...

    def drain(self, tick: Callable[[], None] | None = None) -> list[BatchOutcome]: ...

    def merge(self, primary: dict, secondary: dict) -> str | None: ...

    def close(self, wait: bool = True) -> None: ...


class OutboxSink:
    """--dry-run: the exact request bodies, one NDJSON line per request and one file per model;
    every item counts as accepted, nothing leaves the machine."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._files: dict[str, IO[bytes]] = {}
        self._done: list[BatchOutcome] = []
        self.stats = {"requests": 0, "bytes_sent": 0, "items_sent": 0}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def submit(self, batch: Batch, model: str, tick: Callable[[], None] | None = None) -> None:
        body = batch.body()
        if self.directory is not None:
            handle = self._files.get(model)
            if handle is None:
                handle = self._files[model] = open(self.directory / f"{model}.ndjson", "wb")  # noqa: SIM115
            handle.write(body + b"\n")
        self.stats["requests"] += 1
        self.stats["bytes_sent"] += len(body)
        self.stats["items_sent"] += len(batch.items)
        self._done.append(
            BatchOutcome(
                batch=batch,
                accepted=list(range(len(batch.items))),
                rejected=[],
                undelivered=[],
                status=None,
                attempts=0,
                error=None,
            )
        )

    def poll(self) -> list[BatchOutcome]:
        done, self._done = self._done, []
        return done

    def merge(self, primary: dict, secondary: dict) -> str | None:
        if self.directory is not None:
            handle = self._files.get("merge_customers")
            if handle is None:
                handle = self._files["merge_customers"] = open(self.directory / "merge_customers.ndjson", "wb")  # noqa: SIM115
            handle.write(orjson.dumps({"primary": primary, "secondary": secondary}) + b"\n")
        return None

    def drain(self, tick: Callable[[], None] | None = None) -> list[BatchOutcome]:
        return self.poll()

    def close(self, wait: bool = True) -> None:
        for handle in self._files.values():
            handle.close()


class ClientSink:
    """The real thing: a TrackClient."""

    def __init__(self, client: TrackClient) -> None:
        self.client = client

    def submit(self, batch: Batch, model: str, tick: Callable[[], None] | None = None) -> None:
        self.client.submit(batch, tick)

    def poll(self) -> list[BatchOutcome]:
        return self.client.poll()

    def drain(self, tick: Callable[[], None] | None = None) -> list[BatchOutcome]:
        return self.client.drain(tick)

    def merge(self, primary: dict, secondary: dict) -> str | None:
        return self.client.merge(primary, secondary)

    @property
    def stats(self) -> dict:
        return self.client.stats

    def close(self, wait: bool = True) -> None:
        """`wait=False` (a run that ends in an error or a signal): no retry and no queued batch
        is started any more; only the requests already on the wire are let finish."""
        self.client.close(wait=wait)


