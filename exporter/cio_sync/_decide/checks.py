"""What blocks one model before any of its rows is sent, each check returning the problem to
show (None: it passes): the relation was built by the checked dbt invocation, the state belongs
to this relation and workspace, the payload shape has not changed, not too many people get a new
identifier, not too many people suppressed; and what blocks its removals: more rows leaving than
max_deletes. And what a people model leaves out: attributes null in every row. Reads the state
and, where the answer must come from the rows being sent, the model's read snapshot. A run
(_run.kinds) and `cio-export check` (_ops.check) judge by these same rules."""

from __future__ import annotations

from collections.abc import Callable

from .._project.model import TOPIC_PREFIX, SyncModel
from .._read.dialects import Dialect
from .._read.reader import SnapshotReader
from .._sql import literal
from .._state import StateStore


def build_proof_problem(state: StateStore, reader: SnapshotReader, model: SyncModel, relation: str,
                        invocation_id: str | None, build_log_schema: str) -> str | None:
    """The relation must have been built by the dbt invocation whose results passed the gate:
    read in the same snapshot as the rows, so an overlapping `dbt build` whose tests have not
    run yet cannot slip its data through."""
    schema = model.spec.meta.get("build_log_schema") or build_log_schema
    try:
        rows = reader.query(state.build_proof_sql(model.spec.unique_id, relation, schema))
    except Exception:  # noqa: BLE001 - no build log table at all
        reader.restart()
        rows = []
    built_by = rows[0][0] if rows else None
    if built_by == invocation_id:
        return None
    if built_by:
        return (f"{relation} was rebuilt by dbt invocation {built_by} after the one whose results were "
                f"checked ({invocation_id}): a dbt run overlapped. Run cio-export again after it finishes.")
    return (f"no build proof for {relation} in {schema}.cio_builds: add the post-hook "
            "\"{{ cio_sync.record_build() }}\" to this model (the package's marts have it), or "
            "set meta.cio.build_log_schema / var cio_state_schema to where dbt writes it.")


def scope_problem(state: StateStore, model: SyncModel, site_id: str | None, accept_relation_change: bool,
                  note: Callable[[str], None]) -> str | None:
    """A model's state describes one relation and one Customer.io workspace. A run reading
    another relation under the same model name (a dev target beside prod in one state schema)
    or sending to another workspace would take the other's deliveries for its own and skip
    what it never sent: refused, with what to do. The first run records both."""
    if not state.available:
        return None
    relation = model.spec.relation_name
    known = state.model_scope(model.name)
    if known is None:
        if state.has_rows(model.name, model.is_event):  # state from before scopes were recorded: adopted
            note(f"{model.name}: its state is now recorded as that of {relation}"
                 + (f" sent to workspace {site_id}" if site_id else ""))
        state.record_model_scope(model.name, relation, site_id)
        return None
    known_relation, known_site = known
    if site_id and known_site and site_id != known_site:
        return (f"the state of {model.name} in {state.schema} belongs to Customer.io workspace {known_site}; this "
                f"run sends to workspace {site_id}. It would count the other workspace's deliveries as its own. "
                "Give each workspace its own state schema (--state-schema, or var cio_state_schema per target: "
                "docs/exporter.md, 'Dev and prod targets').")
    if relation != known_relation:
        if not accept_relation_change:
            return (f"the state of {model.name} in {state.schema} was made syncing {known_relation}; this run "
                    f"reads {relation}. Two targets sharing a state schema would each skip what the other sent. "
                    "Give each target its own state schema (var cio_state_schema, e.g. "
                    "\"cio_state_{{ target.name }}\": docs/exporter.md, 'Dev and prod targets'); if the relation "
                    "moved on purpose (same people, same workspace), rerun with --accept-relation-change.")
        state.record_model_scope(model.name, relation, site_id or known_site)
    elif site_id and not known_site:
        state.record_model_scope(model.name, relation, site_id)
    return None


def payload_schema_problem(state: StateStore, model: SyncModel, accept_schema_change: bool) -> str | None:
    """A changed payload shape blocks the model until --accept-schema-change."""
    stored = state.payload_schema(model.name)
    if stored is None:
        return None
    kind, previous = stored
    if kind != model.spec.identifier_kind:
        return (f"identifier kind changed from {kind} to {model.spec.identifier_kind}: people would be split "
                f"into new profiles. Run `cio-export reset --select {model.name}` if that is intended.")
    current = model.payload_schema()
    # A topic is never removed in Customer.io (a null one is not sent): one gone from the
    # payload (null in every row) breaks nothing.
    removed = sorted(name for name in set(previous) - set(current) if not name.startswith(TOPIC_PREFIX))
    retyped = sorted(k for k in set(previous) & set(current) if previous[k] != current[k])
    if not (removed or retyped) or accept_schema_change:
        return None
    parts = []
    if removed:
        parts.append("removed or renamed: " + ", ".join(removed))
    if retyped:
        parts.append("retyped: " + ", ".join(f"{k} ({previous[k]} -> {current[k]})" for k in retyped))
    return ("payload shape changed (" + "; ".join(parts) + "): templates and segments that use these "
            "attributes would break silently. Rerun with --accept-schema-change once they are updated.")


def identifier_change_problem(state: StateStore, reader: SnapshotReader, dialect: Dialect, relation: str,
                              model: SyncModel, shard: tuple[int, int] | None) -> str | None:
    """Too many known people about to get a new identifier (a customer_id rebuilt from another
    column or type, an email normalised differently) blocks the model before anything is
    sent: each would become a second profile in Customer.io. Counted as the people whose key
    keeps its row with another identifier, plus, as people cannot be matched otherwise, the
    smaller of how many synced people left and how many unknown ones appeared."""
    if not state.available or not state.has_rows(model.name, False):
        return None
    q = dialect.quote
    key, ident = dialect.text(q(model.key_column.name)), dialect.text(q(model.identifier.name))
    rows_where, state_where = "", ""
    if shard is not None:
        index, count = shard
        rows_where = f" where {dialect.shard(key, count)} = {index}"
        state_where = f" and {dialect.shard('person_key', count)} = {index}"
    joined = (f"(select {key} as k, {ident} as i from {relation}{rows_where}) h full outer join "
              f"(select person_key, identifier from {state.table('cio_people_state')} where model = "
              f"{literal(model.name)}{state_where}) s on s.person_key = h.k")
    [(known, changed, appeared, left)] = reader.query(
        "select count(s.person_key), "
        "count(case when h.k is not null and s.person_key is not null and s.identifier <> h.i then 1 end), "
        "count(case when s.person_key is null and h.k is not null then 1 end), "
        f"count(case when h.k is null then 1 end) from {joined}")
    known, changed, appeared, left = int(known), int(changed), int(appeared), int(left)
    changes = changed + min(appeared, left)
    cap = model.spec.option("max_identifier_changes")
    if not known or changes <= limit_of(cap, known):
        return None
    examples = "; ".join(_identifier_change_examples(reader, joined, changed, min(appeared, left)))
    return (f"{changes} of {known} known people would get a new identifier ({changed} keep their key with "
            f"another identifier; {left} synced people left while {appeared} unknown ones appeared), over "
            f"max_identifier_changes ({cap}): each would become a second profile in Customer.io. Nothing was "
            f"sent. Examples: {examples}. Check how {model.identifier.name} is built (another column, another "
            "type); if the change is intended, rerun with --accept-identifier-changes.")


def _identifier_change_examples(reader: SnapshotReader, joined: str, changed: int, unmatched: int) -> list[str]:
    examples = []
    if changed:  # the key pairs the old identifier with the new one
        pairs = reader.query(f"select s.identifier, h.i from {joined} where h.k is not null and "
                             "s.person_key is not null and s.identifier <> h.i order by 1 limit 5")
        examples.append("same key: " + ", ".join(f"{old!r} -> {new!r}" for old, new in pairs))
    if unmatched:  # nothing pairs them: each side on its own
        for label, column, condition in (("left", "s.identifier", "h.k is null"),
                                         ("appeared", "h.i", "s.person_key is null")):
            found = reader.query(f"select {column} from {joined} where {condition} order by 1 limit 5")
            examples.append(f"{label}: " + ", ".join(repr(value) for (value,) in found))
    return examples


def limit_of(cap: int | str, total: int) -> float:
    """What a cap allows: a count, or a percentage (`"5%"`) of `total`."""
    return total * float(cap[:-1]) / 100 if isinstance(cap, str) else cap


#: What leaves a model of each kind, as its removals are counted
DEPARTED_NOUNS = {"people": "people", "object": "objects", "relationship": "relationships", "device": "devices",
                  "suppression": "suppressed people"}


def departures_problem(model: SyncModel, leaving: int, synced: int) -> str | None:
    """More of what this tool synced leaving the model than its max_deletes (a count, or a share
    of the `synced`) blocks its removals: none is deleted, suppressed or unsuppressed."""
    cap = model.spec.meta.get("max_deletes")
    if cap is None or leaving <= limit_of(cap, synced):
        return None
    action = model.spec.option("on_delete")
    return (f"{leaving} of {synced} synced {DEPARTED_NOUNS[model.kind]} left the model, over max_deletes ({cap}): "
            f"none was {action}{'d' if action.endswith('e') else 'ed'}. Check the model; "
            "raise max_deletes if this is intended.")


def suppressions_problem(reader: SnapshotReader, query_sql: str, relation: str,
                         model: SyncModel) -> tuple[int, str | None]:
    """How many people a suppression model's query (its diff against the state) would suppress,
    and the problem if that is over max_suppressions (a count, or a share of the model's rows):
    nobody is suppressed then."""
    [(count,)] = reader.query(f"select count(*) from ({query_sql}) q")
    cap = model.spec.meta["max_suppressions"]
    rows = 0
    if isinstance(cap, str):
        [(rows,)] = reader.query(f"select count(*) from {relation}")
    if int(count) <= limit_of(cap, int(rows)):
        return int(count), None
    return int(count), (f"{count} people would be suppressed, over max_suppressions ({cap}): nobody was. A "
                        "suppression deletes the profile in Customer.io and blocks the identifier; check the model "
                        "(run with --dry-run to list them), then raise max_suppressions if this is intended.")


def device_fields(model: SyncModel) -> frozenset[str]:
    """A device's platform and last use: read among the attributes, but the device's own fields,
    kept when null in every row (see without_unsupplied)."""
    meta = model.spec.meta
    if model.kind != "device":
        return frozenset()
    return frozenset(c for c in (meta.get("platform_column"), meta.get("last_used_column")) if c)


def without_unsupplied(reader: SnapshotReader, dialect: Dialect, relation: str, model: SyncModel,  # noqa: PLR0913
                       note: Callable[[str], None],
                       keep: frozenset[str] = frozenset()) -> tuple[SyncModel, tuple[str, ...]]:
    """A people model without its attributes that are null in every row (an input column the
    shop does not have, `null as email`): sending those nulls would erase what another
    integration set on every profile, and the user supplied no value. Events leave nulls out
    anyway. meta.cio.send_null_columns: true sends them. `keep`: columns read among the
    attributes that are not attributes (a device's platform and last use), never left out.
    Returns the model and the attributes left out."""
    if not model.attributes or model.spec.meta.get("send_null_columns"):
        return model, ()
    # One probe per column that stops at its first non-null value: a scan only for a column
    # that is null throughout (or nearly).
    probes = ", ".join(f"(select 1 from {relation} where {dialect.quote(c.name)} is not null limit 1)"
                       for c in model.attributes)
    [(any_row, *filled)] = reader.query(f"select (select 1 from {relation} limit 1), {probes}")
    if not any_row:
        return model, ()
    empty = tuple(c.name for c, n in zip(model.attributes, filled, strict=True) if not n and c.name not in keep)
    if not empty:
        return model, ()
    note(f"{model.name}: {', '.join(empty)} null in every row: not sent, so values set in "
         "Customer.io by another source are kept (meta.cio.send_null_columns sends them)")
    return model.without(empty), empty
