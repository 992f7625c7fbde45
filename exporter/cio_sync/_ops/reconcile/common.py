"""What reconcile and spot-check share: tolerances, reading the warehouse, finding a model, YAML
and JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..._errors import ConfigError
from ..._project.artifacts import Artifacts
from ..._project.model import ModelSpec
from ..._read.dialects import dialect_for

EVENT_LEDGER = "cio_event_ledger"


@dataclass(frozen=True)
class Tolerance:
    """How far Customer.io may be from the warehouse: an absolute number of people, or a
    percentage of the warehouse count (``"2%"``)."""

    value: float
    percent: bool = False

    @classmethod
    def parse(cls, text: str | int | float) -> Tolerance:
        raw = str(text).strip()
        percent = raw.endswith("%")
        number = raw[:-1].strip() if percent else raw
        try:
            value = float(number)
        except ValueError:
            raise ConfigError(f"a tolerance is a number of people or a percentage like '2%', not {text!r}") from None
        if value < 0 or not math.isfinite(value):
            raise ConfigError(f"a tolerance must not be negative: {text!r}")
        return cls(value, percent)

    def allowed(self, base: int) -> float:
        return base * self.value / 100.0 if self.percent else self.value

    def __str__(self) -> str:
        text = f"{self.value:g}"
        return text + "%" if self.percent else text


def run_query(adapter, sql: str) -> list[tuple]:
    """Rows of a read-only query on the adapter's open connection (its transaction, if any, is
    rolled back afterwards)."""
    handle = adapter.connections.get_thread_connection().handle
    embedded = dialect_for(adapter).embedded
    cursor = handle.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        # dbt-duckdb shares one cursor per connection: closing it would close the connection.
        if not embedded:
            cursor.close()
            handle.rollback()


def find_model(artifacts: Artifacts, name: str) -> dict[str, Any]:
    """The manifest node of a model given as ``name``, ``package.name`` or its unique_id."""
    nodes = [n for n in (artifacts.manifest_dict.get("nodes") or {}).values() if n.get("resource_type") == "model"]
    if name.startswith("model."):
        found = [n for n in nodes if n.get("unique_id") == name]
    elif "." in name:
        package, _, model = name.partition(".")
        found = [n for n in nodes if n.get("package_name") == package and n.get("name") == model]
    else:
        found = [n for n in nodes if n.get("name") == name]
    if not found:
        raise ConfigError(f"model {name!r} is not in the manifest ({artifacts.target_path}): check the name")
    if len(found) > 1:
        options = ", ".join(sorted(n["unique_id"] for n in found))
        raise ConfigError(f"model {name!r} is ambiguous ({options}): write it as package.model")
    return found[0]


def _identifier_of(node: Mapping[str, Any], override: Mapping[str, Any] | None) -> tuple[str, str]:
    """(column, kind) identifying people in the model: the config's, else its meta.cio's."""
    if override:
        column, kind = override.get("column"), override.get("kind", "id")
        if not column or kind not in ("id", "email", "cio_id"):
            raise ConfigError(f"{node['name']}: identifier needs a column and a kind (id, email or cio_id)")
        return str(column), str(kind)
    spec = ModelSpec.from_node(dict(node))
    if spec is None:
        raise ConfigError(
            f"{node['name']} has no meta.cio: say which column identifies people with "
            "identifier: {column: ..., kind: id|email|cio_id}"
        )
    return spec.identifier_column, spec.identifier_kind


def _load_yaml(path: Path) -> Any:
    import yaml  # PyYAML, a dependency of dbt-core

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError


def report_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=_json_default)
