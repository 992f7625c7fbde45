"""``cio-export serve``'s configuration: the jobs it acts on and what it syncs for each; the
webhook signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._project.artifacts import STATE_SCHEMA_NAME
from .api import ERRORED_RUN_POLICIES

# --------------------------------------------------------------------------------------------
# serve: configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobConfig:
    """What to sync when a run of one dbt Cloud job completes."""

    job_id: str
    select: tuple[str, ...] = ("tag:cio",)
    exclude: tuple[str, ...] = ()
    target: str | None = None
    vars: str | None = None
    errored_runs: str = "skip"
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServeConfig:
    jobs: dict[str, JobConfig]
    account_id: str | None = None
    state_schema: str | None = None


_SELECTION = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
SERVE_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["jobs"],
    "properties": {
        "account_id": {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
        "state_schema": {"type": "string", "pattern": STATE_SCHEMA_NAME.pattern},
        "jobs": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[0-9]{1,20}$"},
            "additionalProperties": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "select": _SELECTION,
                    "exclude": _SELECTION,
                    "target": {"type": "string", "minLength": 1},
                    "vars": {"type": ["object", "string"]},
                    "errored_runs": {"enum": list(ERRORED_RUN_POLICIES)},
                    "args": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}


def _selection(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(part for item in items for part in str(item).split() if part)


def load_serve_config(path: Path) -> ServeConfig:
    """Read and validate a serve config file (YAML); errors name the file and the key."""
    import jsonschema
    import yaml  # PyYAML, a dependency of dbt-core

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("jobs"), dict):
        document["jobs"] = {str(k): v for k, v in document["jobs"].items()}
    errors = sorted(jsonschema.Draft202012Validator(SERVE_CONFIG_SCHEMA).iter_errors(document), key=str)
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]
        raise ConfigError(f"{path}: invalid serve configuration\n" + "\n".join(lines))
    jobs = {}
    for job_id, spec in document["jobs"].items():
        spec = spec or {}
        vars_ = spec.get("vars")
        jobs[job_id] = JobConfig(
            job_id=job_id,
            select=_selection(spec.get("select")) or ("tag:cio",),
            exclude=_selection(spec.get("exclude")),
            target=spec.get("target"),
            vars=json.dumps(vars_) if isinstance(vars_, dict) else vars_,
            errored_runs=spec.get("errored_runs", "skip"),
            args=tuple(spec.get("args") or ()),
        )
    account = document.get("account_id")
    return ServeConfig(jobs=jobs, account_id=str(account) if account is not None else None,
                       state_schema=document.get("state_schema"))  # fmt: skip


def sign_body(body: bytes, secret: str) -> str:
    """What dbt Cloud puts in the Authorization header: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


