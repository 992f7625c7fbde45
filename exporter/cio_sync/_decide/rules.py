"""What happens to one changed row of a model: sent, skipped, rejected, held back or left to wait
for a later run. Pure: it reads the row's head (_read.rows) and the run's rules, never a database or
the network; the model's sync carries the decision out (counts, ledger and reject rows)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Final

from .._encode import MAX_KEY_CHARS
from .._project.model import OUT_OF_RANGE_TIME
from .._read.rows import (
    E_FIRST_ATTEMPT,
    E_KEY,
    E_KEY_ROWS,
    E_LEDGER_STATUS,
    E_PERSON_KNOWN,
    E_TIME,
    P_IDENTIFIER,
    P_PREVIOUS_IDENTIFIER,
)

_LEDGER_STATUS, _KEY_ROWS = itemgetter(E_LEDGER_STATUS), itemgetter(E_KEY_ROWS)
_PERSON_KNOWN, _TIME = itemgetter(E_PERSON_KNOWN), itemgetter(E_TIME)
_PREVIOUS_IDENTIFIER = itemgetter(P_PREVIOUS_IDENTIFIER)

# Before an event row is encoded:
ENCODE: Final = "encode"  # encode it; what the encoder refuses is rejected
RESEND: Final = "resend"  # sent before, never answered, within dedupe_window: again, under its id
RENAME: Final = "rename"  # older than max_event_age, backfill: rename: encoded as <name>_backfill
SKIP: Final = "skip"  # older than a dry run's first-sync baseline: counted, not sent
BACKFILL: Final = "backfill"  # older than max_event_age, backfill: skip: recorded, not sent
UNCERTAIN: Final = "uncertain"  # sent before, never answered, longer ago than dedupe_window: not resent
DUPLICATE: Final = "duplicate"  # its key is shared by other rows to send: none is sent
DUPLICATE_PENDING: Final = "duplicate_pending"  # the same, of an event that may have arrived: stays pending
# After a row is encoded:
SEND: Final = "send"
HOLD: Final = "hold"  # an event of a person whose identify was rejected in this run
WAIT: Final = "wait"  # an event of a person Customer.io has never identified: a later run sends it
MERGE: Final = "merge"  # a person with a new identifier, merged into the old profile once acknowledged
IDENTIFIER_CHANGED: Final = "identifier_changed"  # the same, without merging: rejected


@dataclass(frozen=True, slots=True)
class EventRules:
    """The rules an event model's rows are judged by in one run: `snapshot` is the run's time
    (Unix s); `max_age` max_event_age and `backfill` what happens to older events (skip, rename
    or send); `baseline_cutoff` a dry run's first-sync cut-off (events before it would have been
    recorded as history)."""

    snapshot: int
    dedupe_window: float
    max_age: float | None = None
    backfill: str | None = None
    baseline_cutoff: int | None = None

    @property
    def oldest(self) -> float | None:
        """Events older than this take the row-by-row path: the backfill rule (max_event_age),
        and a dry run's first sync skips what the baseline would have recorded."""
        if self.max_age is None:
            return None
        oldest = self.snapshot - self.max_age
        return oldest if self.baseline_cutoff is None else max(oldest, self.baseline_cutoff)

    def before_encoding(self, row: Sequence) -> str:
        key, status = row[E_KEY], row[E_LEDGER_STATUS]
        if key is not None and row[E_KEY_ROWS] > 1:
            return DUPLICATE_PENDING if status == "pending" else DUPLICATE
        if status == "pending":
            first_attempt = row[E_FIRST_ATTEMPT]
            if first_attempt is not None and self.snapshot - first_attempt > self.dedupe_window:
                return UNCERTAIN
            return RESEND
        time = row[E_TIME]
        if time is None or time == OUT_OF_RANGE_TIME:
            return ENCODE  # no time to judge it by: the encoder says what is wrong
        if self.baseline_cutoff is not None and time < self.baseline_cutoff:
            return SKIP
        if (status is None and self.max_age is not None and self.snapshot - time > self.max_age
                and key is not None and len(str(key)) <= MAX_KEY_CHARS):
            if self.backfill == "skip":
                return BACKFILL
            if self.backfill == "rename":
                return RENAME
        return ENCODE

    def plain(self, rows: Sequence[Sequence]) -> bool:
        """Whether no row of a fetched chunk needs a decision of its own, so the chunk can be
        encoded in one C loop (map): none is in the ledger (pending or rejected), shares its key
        with another row, has a person Customer.io does not know, or is older than `oldest`."""
        oldest = self.oldest
        if oldest is None or set(map(_LEDGER_STATUS, rows)) != {None} or max(map(_KEY_ROWS, rows)) > 1 \
                or not all(map(_PERSON_KNOWN, rows)):
            return False
        try:
            return min(map(_TIME, rows)) >= oldest
        except TypeError:  # a null event time (min cannot compare it): row by row
            return False


def event_after_encoding(row: Sequence, identifier: str, rejected_people: set[str],
                         identified: Collection[str] = ()) -> str:
    """An encoded event: held back if its person's identify was rejected in this run; left for a
    later run if Customer.io has never identified its person (a resend went out once already).
    `identified`: people a dry run's people models identify for the first time before the events
    (a run's state has recorded them by the time the events are read: their events do not wait)."""
    if identifier in rejected_people:
        return HOLD
    if not row[E_PERSON_KNOWN] and row[E_LEDGER_STATUS] != "pending" and identifier not in identified:
        return WAIT
    return SEND


def person_after_encoding(row: Sequence, merge: bool) -> str:
    """An encoded person whose state holds another identifier for the same key: merged (meta.cio
    on_identifier_change: merge) or rejected, as it would become a second profile."""
    previous = row[P_PREVIOUS_IDENTIFIER]
    if previous is not None and previous != row[P_IDENTIFIER]:
        return MERGE if merge else IDENTIFIER_CHANGED
    return SEND


def people_plain(rows: Sequence[Sequence]) -> bool:
    """Whether no person of a fetched chunk had another identifier (see EventRules.plain)."""
    return set(map(_PREVIOUS_IDENTIFIER, rows)) == {None}
