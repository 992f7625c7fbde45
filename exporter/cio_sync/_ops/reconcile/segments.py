"""`reconcile`: each Customer.io segment mapped to a SQL predicate over a model, the warehouse
count against the segment's count (and, optionally, the members on each side)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._errors import ConfigError
from ..._project.artifacts import Artifacts, DbtContext, close_adapter, open_adapter, relation_name
from ..app_api import AppApiClient
from .common import Tolerance, _identifier_of, _load_yaml, find_model, run_query


@dataclass(frozen=True)
class SegmentMapping:
    """One Customer.io segment and the warehouse rows that should be in it."""

    segment_id: int
    model: str
    where: str | None = None
    name: str | None = None
    tolerance: Tolerance | None = None
    identifier: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.name or f"segment {self.segment_id}"


RECONCILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["segments"],
    "properties": {
        "segments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["segment_id", "model"],
                "properties": {
                    "segment_id": {"type": "integer", "minimum": 1},
                    "model": {"type": "string", "minLength": 1},
                    "where": {"type": "string"},
                    "name": {"type": "string"},
                    "tolerance": {"type": ["integer", "number", "string"]},
                    "identifier": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["column"],
                        "properties": {"column": {"type": "string"}, "kind": {"enum": ["id", "email", "cio_id"]}},
                    },
                },
            },
        }
    },
}


def load_reconcile_config(path: Path) -> list[SegmentMapping]:
    """Read and validate a reconcile config file; errors name the file and the entry."""
    import jsonschema

    document = _load_yaml(path)
    errors = sorted(jsonschema.Draft202012Validator(RECONCILE_SCHEMA).iter_errors(document), key=str)
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]
        raise ConfigError(f"{path}: invalid reconcile configuration\n" + "\n".join(lines))
    mappings = []
    for entry in document["segments"]:
        tolerance = entry.get("tolerance")
        mappings.append(
            SegmentMapping(
                segment_id=entry["segment_id"],
                model=entry["model"],
                where=(entry.get("where") or "").strip() or None,
                name=entry.get("name"),
                tolerance=Tolerance.parse(tolerance) if tolerance is not None else None,
                identifier=entry.get("identifier"),
            )
        )
    return mappings


def count_gap(warehouse_count: int | None, customerio_count: int | None) -> int | None:
    """Customer.io's count minus the warehouse's (people Customer.io has more), or None when
    either is unknown."""
    if warehouse_count is None or customerio_count is None:
        return None
    return customerio_count - warehouse_count


@dataclass
class SegmentResult:
    segment_id: int
    name: str
    model: str
    where: str | None
    identifier_kind: str
    warehouse_count: int | None = None
    customerio_count: int | None = None
    tolerance: str = "0"
    allowed: float = 0.0
    only_in_warehouse: int | None = None
    only_in_customerio: int | None = None
    sample_only_in_warehouse: list[str] = field(default_factory=list)
    sample_only_in_customerio: list[str] = field(default_factory=list)
    ok: bool = True
    problem: str | None = None

    @property
    def gap(self) -> int | None:
        return count_gap(self.warehouse_count, self.customerio_count)

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "name": self.name,
            "model": self.model,
            "where": self.where,
            "identifier_kind": self.identifier_kind,
            "warehouse_count": self.warehouse_count,
            "customerio_count": self.customerio_count,
            "gap": self.gap,
            "tolerance": self.tolerance,
            "allowed": self.allowed,
            "only_in_warehouse": self.only_in_warehouse,
            "only_in_customerio": self.only_in_customerio,
            "sample_only_in_warehouse": self.sample_only_in_warehouse,
            "sample_only_in_customerio": self.sample_only_in_customerio,
            "ok": self.ok,
            "problem": self.problem,
        }


def _member_label(entry: Mapping[str, Any]) -> str:
    parts = [f"{k}={entry[k]}" for k in ("id", "email", "cio_id") if entry.get(k)]
    return ", ".join(parts) or "(no identifiers)"


def reconcile(
    ctx: DbtContext,
    artifacts: Artifacts,
    mappings: Sequence[SegmentMapping],
    client: AppApiClient,
    *,
    tolerance: Tolerance,
    membership: bool = False,
    sample: int = 20,
) -> list[SegmentResult]:
    """Warehouse counts (and members) for every mapping, then Customer.io's. A result is not ok
    when the count gap, or with ``membership`` the people found on one side only, exceed the
    mapping's tolerance (else ``tolerance``)."""
    from ..._read.dialects import dialect_for

    results: list[SegmentResult] = []
    plans = []
    for mapping in mappings:
        node = find_model(artifacts, mapping.model)
        column, kind = _identifier_of(node, mapping.identifier)
        chosen = mapping.tolerance or tolerance
        results.append(
            SegmentResult(mapping.segment_id, mapping.label, node["name"], mapping.where, kind, tolerance=str(chosen))
        )
        plans.append((mapping, node, column, chosen))
    warehouse_members: list[set[str] | None] = []
    adapter = open_adapter(ctx, artifacts)
    try:
        with adapter.connection_named("cio-export"):
            dialect = dialect_for(adapter)
            for (mapping, node, column, _), result in zip(plans, results, strict=True):
                relation = relation_name(node)
                where = f"\nwhere ({mapping.where})" if mapping.where else ""
                [(count,)] = run_query(adapter, f"select count(*) from {relation}{where}")
                result.warehouse_count = int(count)
                if membership:
                    ident = dialect.text(dialect.quote(column))
                    condition = f"({mapping.where}) and " if mapping.where else ""
                    not_null = f"{dialect.quote(column)} is not null"
                    rows = run_query(adapter, f"select distinct {ident} from {relation}\nwhere {condition}{not_null}")
                    warehouse_members.append({str(r[0]) for r in rows})
                else:
                    warehouse_members.append(None)
    finally:
        close_adapter(adapter)

    for (mapping, _node, _column, chosen), result, members in zip(plans, results, warehouse_members, strict=True):
        result.customerio_count = client.segment_count(mapping.segment_id)
        result.allowed = chosen.allowed(result.warehouse_count or 0)
        problems = []
        if abs(result.gap or 0) > result.allowed:
            problems.append(
                f"Customer.io has {result.customerio_count}, the warehouse {result.warehouse_count} "
                f"(gap {result.gap:+d}, allowed {result.allowed:g})"
            )
        if members is not None:
            in_cio: set[str] = set()
            without_kind: list[str] = []
            for entry in client.segment_members(mapping.segment_id):
                value = entry.get(result.identifier_kind)
                if value is None or value == "":
                    without_kind.append(_member_label(entry))
                else:
                    in_cio.add(str(value))
            only_wh = sorted(members - in_cio)
            only_cio = sorted(in_cio - members) + sorted(without_kind)
            result.only_in_warehouse, result.only_in_customerio = len(only_wh), len(only_cio)
            result.sample_only_in_warehouse = only_wh[:sample]
            result.sample_only_in_customerio = only_cio[:sample]
            if len(only_wh) + len(only_cio) > result.allowed:
                problems.append(
                    f"{len(only_wh)} in the warehouse only, {len(only_cio)} in Customer.io only "
                    f"(allowed {result.allowed:g})"
                )
        result.ok = not problems
        result.problem = "; ".join(problems) or None
    return results
