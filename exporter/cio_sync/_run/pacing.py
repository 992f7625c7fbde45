"""How a shard's requests are paced with the other shards sending to the same workspace: one
rate budget shared through the state schema on PostgreSQL (_state.budget), else this shard's
part of the rate. A run that is not sharded paces itself with its own token bucket."""

from __future__ import annotations

from .._output import Reporter
from .._send.sinks import ClientSink, Sink
from .._state import StateStore
from .._state.budget import SharedRateBudget, chunk_for
from .options import RunOptions


def pace(options: RunOptions, adapter, state: StateStore, sink: Sink, reporter: Reporter) -> SharedRateBudget | None:
    """Set a shard's pacing; returns the shared budget (to close at the end), if one is used.

    With a rate limit, the state on PostgreSQL and --shared-rate (the default), every shard of the
    workspace claims its requests from one budget of `--rate-limit` requests/s. Otherwise a shard
    paces itself at its part, `--rate-limit / N`, so that N shards never exceed the rate together
    (a finished shard's part is then not passed on). A run without --shard keeps its own token
    bucket: nothing to share, and no round trip to the database for its requests."""
    track = options.track
    if not isinstance(sink, ClientSink) or track is None or not track.rate_limit or options.shard is None:
        return None
    rate = track.rate_limit
    share = options.shard[1]
    if options.shared_rate and state.dialect.advisory_locks and state.writable:
        from dbt.adapters.contracts.connection import Connection, ConnectionState

        connection = adapter.connections.open(Connection(
            type=adapter.type(), name="cio-export-rate", state=ConnectionState.INIT, transaction_open=False,
            handle=None, credentials=adapter.config.credentials))
        budget = SharedRateBudget(connection.handle, state.schema, track.site_id, rate)
        sink.client.share_rate(budget, chunk_for(rate), fallback_rate=rate / share)
        return budget
    if share > 1:
        sink.client.set_rate(rate / share)
        why = "--no-shared-rate" if not options.shared_rate else "no shared rate budget on this warehouse"
        reporter.note(f"shard {options.shard_label}: {rate / share:.3g} requests/s, its part of --rate-limit {rate:g} "
                      f"({why})")
    return None
