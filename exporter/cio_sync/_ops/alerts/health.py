"""What the state schema says of the selected synced models, for alerts: their open rejects by
reason (rows left undelivered are not counted: they fail the run, and the next run resends
them) and when each last synced successfully (a run that delivered what it had, some rows
refused or not), against its meta.cio.max_lag, as `status` judges a model late."""

from __future__ import annotations

from collections.abc import Sequence

from ..._project.model import ModelSpec, parse_duration
from ..._state import SYNCED_RUN_STATUSES, StateStore
from .incidents import ModelHealth


def model_health(state: StateStore, specs: Sequence[ModelSpec]) -> list[ModelHealth]:
    """One ModelHealth per spec (two statements for all of them); none when the state schema
    has no tables yet."""
    names = sorted({spec.name for spec in specs})
    if not names or not state.available:
        return []
    where = f"model in ({', '.join(['%s'] * len(names))})"
    rejects: dict[str, dict[str, int]] = {}
    for model, reason, count in state.execute(
            f"select model, reason, count(*) from {state.table('cio_rejects')} where resolved_at is null "
            f"and reason <> 'undelivered' and {where} group by model, reason", names):
        rejects.setdefault(model, {})[reason] = int(count)
    successes = dict(state.execute(f"select model, max(finished_at) from {state.table('cio_runs')} "
                                   f"where status in {SYNCED_RUN_STATUSES} and {where} group by model", names))
    state.commit()
    health = []
    for spec in specs:
        max_lag = spec.meta.get("max_lag")
        health.append(ModelHealth(spec.name, rejects.get(spec.name, {}), successes.get(spec.name),
                                  str(max_lag) if max_lag else None,
                                  float(parse_duration(max_lag)) if max_lag else None))
    return health
