"""Rows kept out of Customer.io by the dbt package, counted by input and reason from its
`cio_quarantine` mart (read through the dbt profile's connection), with a few of each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._project.artifacts import Artifacts, relation_name
from .reconcile.common import run_query

MART = "cio_quarantine"


@dataclass
class QuarantineGroup:
    source: str
    reason: str
    rows: int
    samples: list[dict[str, Any]] = field(default_factory=list)  # row_key, column_name, raw_value

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "rows": self.rows, "samples": self.samples}


@dataclass
class Quarantine:
    """What cio_quarantine holds; `problem` says why it could not be read (no such mart, not built)."""

    relation: str | None
    groups: list[QuarantineGroup] = field(default_factory=list)
    problem: str | None = None

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        return {"relation": self.relation, "rows": self.rows, "groups": [g.as_dict() for g in self.groups],
                "problem": self.problem}


def _mart_node(artifacts: Artifacts) -> dict | None:
    nodes = [n for n in (artifacts.manifest_dict.get("nodes") or {}).values()
             if n.get("resource_type") == "model" and n.get("name") == MART]
    return next((n for n in nodes if n.get("package_name") == "cio_sync"), nodes[0] if nodes else None)


def quarantine_summary(adapter, artifacts: Artifacts, samples: int = 3) -> Quarantine:
    """Counts per (input, reason), the largest first, each with up to `samples` rows; run on the
    adapter's open connection."""
    node = _mart_node(artifacts)
    if node is None:
        return Quarantine(None, problem=f"the project has no {MART} model (the cio_sync package's mart)")
    relation = relation_name(node)
    try:
        counts = run_query(adapter, f"select source, reason, count(*) from {relation} group by source, reason")
        rows = run_query(
            adapter,
            "select source, reason, row_key, column_name, raw_value from (select source, reason, row_key, column_name, "
            "raw_value, row_number() over (partition by source, reason order by row_key, column_name) as n "
            f"from {relation}) q where n <= {int(samples)} order by source, reason, n")
    except Exception as exc:  # noqa: BLE001 - a mart not built (yet) is said on the page, not fatal
        text = str(exc).strip().splitlines()
        return Quarantine(relation, problem=f"{relation} could not be read: {text[0] if text else type(exc).__name__}")
    groups = {(s, r): QuarantineGroup(str(s), str(r), int(n)) for s, r, n in counts}
    for source, reason, row_key, column, value in rows:
        group = groups.get((source, reason))
        if group is not None:
            group.samples.append({"row_key": None if row_key is None else str(row_key), "column_name": column,
                                  "raw_value": None if value is None else str(value)})
    return Quarantine(relation, sorted(groups.values(), key=lambda g: (-g.rows, g.source, g.reason)))
