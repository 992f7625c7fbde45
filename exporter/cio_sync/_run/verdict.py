"""Why one row will or will not be sent on the next run, in one sentence (`cio-export explain`):
read from what the model's dry run of that row did (ModelResult: its items, rejects, held,
waiting, skipped, blocked) and from what the state holds of it (RowState), not decided anew. The
one exception is what a run does before it reads anything and a dry run does not: an event a
stopped run left in flight longer ago than dedupe_window is recorded as uncertain. It reads
nothing itself (no database, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._encode import Reject
from .._output import utc_text
from .._project.model import SyncModel, parse_duration
from .._state import utcnow
from .._state.row_state import RejectEntry, RowState
from .results import ModelResult

#: what a departure does, for people
_REMOVALS = {"delete": "deletes it", "suppress": "suppresses it", "unsuppress": "unsuppresses it"}


@dataclass(frozen=True)
class Verdict:
    will_send: bool
    reason: str  # a code: new, changed, resend, rejected, held, waiting, baseline, backfill, blocked, ...
    sentence: str


@dataclass(frozen=True)
class Findings:
    """What the dry run of one key found, and what the state holds of it."""

    model: SyncModel
    key: str
    in_model: bool  # a row of the model has the key
    result: ModelResult  # the model's dry run, which read that key's rows only
    state: RowState
    items: Sequence[dict] = ()  # what it would send
    person: str | None = None  # an event's person (its identifier)
    people: Sequence[ModelResult] = ()  # the people models synced first, of that person only
    waits_for: Sequence[str] = ()  # the people models an event's person must be identified by
    row_hash: str | None = None  # the row's hash now, as the run computes it
    #: cio-export's own checks of the row now (its encoder's answer), when an open reject keeps
    #: an unchanged row out: a Reject, or None when it passes (Customer.io refused it)
    checked: Reject | None = None
    rechecked: bool = False
    now: datetime = field(default_factory=utcnow)  # UTC, as the state's times


def verdict(f: Findings) -> Verdict:
    """The one sentence of `explain`."""
    result = f.result
    stopped = _in_flight_beyond_window(f)
    if stopped is not None:
        return stopped
    if f.items:
        return (_event_sent(f) if f.model.is_event else _identify_sent(f)) if f.in_model else _departs(f)
    if result.status == "blocked":
        return Verdict(False, "blocked", f"Will not be sent: the model is blocked on the next run: "
                       f"{_clause(result.message)}.")
    if not f.in_model:
        return _not_in_model(f)
    if not result.rows_scanned:  # the diff leaves it out
        return _event_unchanged(f) if f.model.is_event else _identify_unchanged(f)
    return _kept_back(f)


# -- sent -------------------------------------------------------------------------------------
def _identify_sent(f: Findings) -> Verdict:
    acknowledged, action = f.state.acknowledged, f.items[0].get("action", "identify")
    identifier = _identifier_of(f.items[0])
    undelivered = [r for r in f.state.open_rejects if r.transient]
    refused = [r for r in f.state.open_rejects if not r.transient]
    if acknowledged is not None and acknowledged.identifier not in (None, identifier):
        return Verdict(True, "merge", f"Will be sent on the next run ({action}): its identifier changed from "
                       f"{acknowledged.identifier} to {identifier} for the same key, and the old profile is merged "
                       "into the new one once Customer.io acknowledges it (on_identifier_change: merge).")
    if undelivered:
        return Verdict(True, "undelivered", f"Will be sent on the next run ({action}): its last sending was not "
                       f"delivered ({utc_text(undelivered[0].last_seen_at)}: {_clause(undelivered[0].message)}).")
    if refused:
        return Verdict(True, "changed_after_reject", f"Will be sent on the next run ({action}): "
                       f"{_rejected(refused[0], None)} and changed since.")
    if acknowledged is None:
        return Verdict(True, "new", f"Will be sent on the next run ({action}): Customer.io has acknowledged no "
                       "sync of it yet.")
    return Verdict(True, "changed", f"Will be sent on the next run ({action}): its attributes changed since the "
                   f"last acknowledged sync (last acknowledged {utc_text(acknowledged.synced_at)}).")


def _event_sent(f: Findings) -> Verdict:
    ledger, spec = f.state.ledger, f.model.spec
    item = f.items[0]
    stopped = [flight for flight in f.state.in_flight if not flight.live]
    if f.result.resent or (ledger is not None and ledger.status == "pending"):
        when = utc_text(ledger.first_attempt_at) if ledger is not None else "an earlier run"
        return Verdict(True, "resend", f"Will be sent on the next run: it went out on {when} without an answer "
                       f"(pending), and is sent again under the id it went out with ({item.get('id')}), which "
                       "Customer.io deduplicates.")
    if stopped:
        return Verdict(True, "resend", "Will be sent on the next run: it was in flight when a run stopped "
                       f"({utc_text(stopped[0].since)}), and is sent again under the id it went out with "
                       f"({stopped[0].event_id or item.get('id')}), which Customer.io deduplicates.")
    if ledger is not None and ledger.status == "rejected":
        return Verdict(True, "changed_after_reject", "Will be sent on the next run: "
                       f"{_rejected(_ledger_reject(f), ledger.event_id is not None)} and changed since.")
    name = item.get("name")
    if spec.option("backfill") == "rename" and name != f.model.event_name and str(name).endswith("_backfill"):
        return Verdict(True, "backfill_renamed", f"Will be sent on the next run as {name}: older than "
                       f"max_event_age ({spec.option('max_event_age')}), and backfill is rename.")
    first = "" if f.state.synced_before else (
        f", and newer than initial_window ({spec.option('initial_window')}) at the model's first sync")
    return Verdict(True, "new", f"Will be sent on the next run: a new event, not sent before{first}.")


def _departs(f: Findings) -> Verdict:
    action = f.items[0].get("action", "delete")
    option = f.model.spec.option("on_delete")
    return Verdict(True, "left", f"Will be sent on the next run ({action}): it left the model, and on_delete: "
                   f"{option} {_REMOVALS.get(option, 'removes it')} in Customer.io.")


# -- not sent ---------------------------------------------------------------------------------
def _kept_back(f: Findings) -> Verdict:
    """Read by the run and not sent: rejected, held back, waiting for its person, skipped."""
    result, spec = f.result, f.model.spec
    reject = result.reject_sample[0] if result.reject_sample else None
    if reject is not None and reject.reason == "held":
        return _held(f)
    if reject is not None and reject.reason == "uncertain":
        return Verdict(False, "uncertain", "Will not be sent: it went out before without an answer, longer ago "
                       f"than dedupe_window ({spec.option('dedupe_window')}): it may have arrived, so the next run "
                       "records it as uncertain and does not send it again.")
    if reject is not None:
        code = {"duplicate_event_key": "duplicate_key", "identifier_changed": "identifier_changed"}.get(
            reject.reason, "rejected")
        where = f", column {reject.column}" if reject.column else ""
        return Verdict(False, code, f"Will not be sent: cio-export's checks reject it ({reject.reason}{where}): "
                       f"{_clause(reject.message)}.")
    if result.waiting:
        return _waiting(f)
    if result.skipped and not f.state.synced_before:
        return Verdict(False, "baseline", f"Will not be sent: older than initial_window "
                       f"({spec.option('initial_window')}) at the model's first sync (baseline): the first run "
                       "records it as history, never sent.")
    if result.skipped:
        return Verdict(False, "backfill", f"Will not be sent: older than max_event_age "
                       f"({spec.option('max_event_age')}), so the next run records it as backfill, never sent "
                       "(backfill is skip).")
    return Verdict(False, "not_sent", "Will not be sent on the next run.")


def _held(f: Findings) -> Verdict:
    """An event held back: its person's identify is rejected in the same run."""
    for people in f.people:
        for reject in people.reject_sample:
            return Verdict(False, "held", f"Will not be sent: held back, as the identify of its person {f.person} "
                           f"by {people.model} (row {reject.row_key}) is rejected in the same run ({reject.reason}: "
                           f"{_clause(reject.message)}).")
    return Verdict(False, "held", f"Will not be sent: held back, as the identify of its person {f.person} is "
                   "rejected in the same run.")


def _waiting(f: Findings) -> Verdict:
    models = ", ".join(f.waits_for) or "the project's people models"
    blocked = "".join(f"; {p.model} is blocked on the next run: {_clause(p.message)}" for p in f.people
                      if p.status == "blocked")
    return Verdict(False, "waiting", f"Will not be sent yet: Customer.io has acknowledged no identify of its person "
                   f"{f.person} by {models}, and it goes out with the first run after that identify{blocked}.")


def _identify_unchanged(f: Findings) -> Verdict:
    """A row the diff leaves out: acknowledged as it is, or refused as it is."""
    acknowledged = f.state.acknowledged
    refused = [r for r in f.state.open_rejects if not r.transient]
    as_refused = next((r for r in refused if r.row_hash == f.row_hash), None)
    if acknowledged is not None and (acknowledged.row_hash == f.row_hash or as_refused is None):
        return Verdict(False, "unchanged", "Will not be sent: unchanged since the last acknowledged sync "
                       f"({utc_text(acknowledged.synced_at)}).")
    if as_refused is not None or refused:
        by = (None if not f.rechecked else f.checked is None)
        return Verdict(False, "rejected", f"Will not be sent: {_rejected(as_refused or refused[0], by)} and "
                       "unchanged since; fix the row (any change sends it again) or run `cio-export run "
                       "--retry-rejects` (`cio-export reset --select " f"{f.model.name}` resends every row of the "
                       "model).")
    return Verdict(False, "unchanged", "Will not be sent: the next run's diff leaves it out.")


def _event_unchanged(f: Findings) -> Verdict:
    """An event the diff leaves out: sent, recorded as history, refused as it is."""
    ledger, spec = f.state.ledger, f.model.spec
    if ledger is None:
        return Verdict(False, "not_sent", "Will not be sent: the next run's diff leaves it out.")
    if ledger.status == "sent":
        changed = " (its row changed since, which does not send it again)" if (
            f.row_hash and ledger.row_hash and f.row_hash != ledger.row_hash) else ""
        return Verdict(False, "sent", f"Will not be sent: already sent (acknowledged "
                       f"{utc_text(ledger.sent_at or ledger.last_attempt_at)}, event id {ledger.event_id}), and an "
                       f"event is sent once{changed}.")
    if ledger.status == "baseline":
        return Verdict(False, "baseline", f"Will not be sent: older than initial_window "
                       f"({spec.option('initial_window')}) at the model's first sync (baseline): recorded as "
                       "history, never sent.")
    if ledger.status == "backfill":
        return Verdict(False, "backfill", f"Will not be sent: older than max_event_age ({spec.option('max_event_age')})"
                       " when it was first read, so it was recorded as backfill, never sent (backfill is skip).")
    if ledger.status == "uncertain":
        return Verdict(False, "uncertain", "Will not be sent: it went out before without an answer, longer ago "
                       f"than dedupe_window ({spec.option('dedupe_window')}), and is recorded as uncertain (it may "
                       "have arrived).")
    return Verdict(False, "rejected", f"Will not be sent: {_rejected(_ledger_reject(f), ledger.event_id is not None)}"
                   " and unchanged since; fix the row (any change sends it again) or run `cio-export run "
                   "--retry-rejects`.")


def _not_in_model(f: Findings) -> Verdict:
    if f.model.is_event:
        status = f" (its ledger says {f.state.ledger.status})" if f.state.ledger is not None else ""
        return Verdict(False, "not_in_model", f"Will not be sent: no row of the model has this key any more{status}, "
                       "and an event is never taken back from Customer.io.")
    if f.state.acknowledged is not None and f.model.spec.option("on_delete") == "ignore":
        return Verdict(False, "left_kept", "Will not be sent: it left the model, and on_delete is ignore: Customer.io "
                       "keeps what it has.")
    return Verdict(False, "not_in_model", "Will not be sent: no row of the model has this key.")


def _in_flight_beyond_window(f: Findings) -> Verdict | None:
    """An event a stopped run left in flight longer ago than dedupe_window: the next run records
    it as uncertain before reading anything (a dry run recovers nothing, so its read says
    nothing of it)."""
    stopped = [flight.since for flight in f.state.in_flight if not flight.live and flight.since is not None]
    if not stopped or not f.model.is_event:
        return None
    window = parse_duration(f.model.spec.option("dedupe_window"))
    if (f.now - min(stopped)).total_seconds() <= window:
        return None
    return Verdict(False, "uncertain", f"Will not be sent: it was in flight when a run stopped "
                   f"({utc_text(min(stopped))}), longer ago than dedupe_window "
                   f"({f.model.spec.option('dedupe_window')}): it may have arrived, so the next run records it as "
                   "uncertain and does not send it again.")


# -- pieces -----------------------------------------------------------------------------------
def _rejected(reject: RejectEntry, by_customerio: bool | None) -> str:
    """'rejected by Customer.io on <when> (<reason>: <message>)'."""
    by = {True: " by Customer.io", False: " by cio-export's checks", None: ""}[by_customerio]
    message = f": {_clause(reject.message)}" if reject.message and reject.message != reject.reason else ""
    return f"rejected{by} on {utc_text(reject.last_seen_at)} ({reject.reason}{message})"


def _clause(text: str | None) -> str:
    """A message (which may end a sentence of its own) as part of the verdict's sentence."""
    return (text or "").strip().rstrip(".")


def _ledger_reject(f: Findings) -> RejectEntry:
    """An event's open reject, or one made of its ledger entry (its reason)."""
    if f.state.open_rejects:
        return f.state.open_rejects[0]
    ledger = f.state.ledger
    assert ledger is not None
    reason, _, message = (ledger.reason or "rejected").partition(": ")
    return RejectEntry(reason, message or None, False, ledger.row_hash, ledger.first_attempt_at,
                       ledger.last_attempt_at, None, ledger.run_id)


def _identifier_of(item: dict[str, Any]) -> str | None:
    identifiers = item.get("identifiers") or {}
    value = identifiers.get("object_id") if "object_id" in identifiers else next(iter(identifiers.values()), None)
    return None if value is None else str(value)
