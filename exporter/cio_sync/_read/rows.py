"""The layout of the rows cio-export reads and writes, by name: the head of a model's row (what
build_query selects before the attributes) and the state rows it records. The query is built from
these lists and every reader indexes rows with these positions, so moving or adding a column in
one place cannot shift what another reads. Positions are plain ints (as cheap as literals in the
row loops); the import fails if a list and its positions disagree in length."""

from __future__ import annotations

from typing import NamedTuple

#: A people row: identifier, stable key, row hash, the state's previous hash and identifier
#: (both null for a person never synced), then one value per attribute.
PERSON_HEAD = ("identifier", "key", "row_hash", "previous_hash", "previous_identifier")
P_IDENTIFIER, P_KEY, P_HASH, P_PREVIOUS_HASH, P_PREVIOUS_IDENTIFIER = range(len(PERSON_HEAD))

#: An event row: identifier, event key, time (Unix s), time in ms, id hash (md5 hex), event name,
#: row hash, ledger status, first attempt (Unix s), the event id it already went out with, how
#: many rows to send share its key, whether Customer.io has its person, then one value per
#: attribute.
EVENT_HEAD = ("identifier", "key", "time", "time_ms", "id_hash", "name", "row_hash", "ledger_status",
              "first_attempt", "sent_event_id", "key_rows", "person_known")
(E_IDENTIFIER, E_KEY, E_TIME, E_TIME_MS, E_ID_HASH, E_NAME, E_HASH, E_LEDGER_STATUS, E_FIRST_ATTEMPT,
 E_SENT_EVENT_ID, E_KEY_ROWS, E_PERSON_KNOWN) = range(len(EVENT_HEAD))


def split_pair_key(key: str) -> tuple[str, str]:
    """(identifier, object id) of a relationship row's key, which its query makes as
    `<length of the identifier>:<identifier>|<object id>` (_read.query.pair_key)."""
    length, _, rest = key.partition(":")
    n = int(length)
    return rest[:n], rest[n + 1:]


class LedgerRow(NamedTuple):
    """A row of cio_event_ledger as the state store writes it."""

    model: str
    event_key: str
    event_id: str | None
    status: str  # sent | pending | rejected | uncertain | backfill
    row_hash: str | None
    event_at: int | None
    first_attempt_at: object
    last_attempt_at: object
    sent_at: object
    run_id: str
    reason: str | None


class RejectRow(NamedTuple):
    """A row of cio_rejects as the state store writes it."""

    model: str
    row_key: str
    reason: str
    message: str
    transient: bool
    row_hash: str | None
    seen_at: object
    run_id: str
