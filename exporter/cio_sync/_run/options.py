"""What one `cio-export run` is asked to do: the CLI's flags as one object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._project.artifacts import DbtContext
from .._read.reader import FETCH_ROWS
from .._send.transport import TrackSettings
from .._state import DEFAULT_SCHEMA


@dataclass
class RunOptions:
    dbt: DbtContext
    select: tuple[str, ...] = ("tag:cio",)
    exclude: tuple[str, ...] = ()
    dry_run: bool = False
    outbox: Path | None = None
    track: TrackSettings | None = None
    batch_bytes: int = 500_000
    ignore_test_failures: bool = False
    allow_mixed_identifiers: bool = False
    fetch_rows: int = FETCH_ROWS
    state_schema: str = DEFAULT_SCHEMA
    build_log_schema: str = DEFAULT_SCHEMA  # var cio_state_schema: where dbt's post-hook writes build proofs
    full_refresh: bool = False
    retry_rejects: bool = False
    accept_schema_change: bool = False
    accept_identifier_changes: bool = False
    accept_relation_change: bool = False
    require_build_proof: bool = True
    lease_ttl: float = 120.0
    shard: tuple[int, int] | None = None  # (K, N): rows whose key hashes to K of N
    #: A preview (a dry run of a few rows, read through a filter in each model's query): the rows
    #: of this person (their identifier, as each model's identifier column holds it) ...
    person: str | None = None
    #: ... and the row of this key in this model, (model, key): its other models read `person`'s
    key: tuple[str, str] | None = None
    shared_rate: bool = True  # with a shard, on PostgreSQL: one rate budget for the workspace's shards (_run.pacing)

    @property
    def shard_label(self) -> str:
        return "all" if self.shard is None else f"{self.shard[0]}/{self.shard[1]}"

    @property
    def preview(self) -> bool:
        """Whether the run reads only a person's or a key's rows (see `person`, `key`)."""
        return self.person is not None or self.key is not None
