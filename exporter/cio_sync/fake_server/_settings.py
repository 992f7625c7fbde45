"""Settings that can be changed while the server runs (faults, limits, region).

One validated, immutable :class:`Settings` value is shared by the CLI, the Python harness and
``POST /_fake/config``, so every entry point accepts the same names and rejects the same
mistakes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from ._validation import MAX_ITEM_BYTES, MAX_REQUEST_BYTES


@dataclasses.dataclass(frozen=True)
class Settings:
    """Runtime-adjustable behaviour of the fake Track API.

    Rates are shares of requests between 0 and 1; durations are seconds.
    """

    region: str = "us"
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_item_bytes: int = MAX_ITEM_BYTES
    request_log_size: int = 1000
    rate_limit: float | None = None
    rate_limit_burst: float | None = None
    error_rate: float = 0.0
    drop_rate: float = 0.0
    latency: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    slow_accepts: bool = True
    seed: int | None = None
    #: Path prefixes the faults apply to, e.g. ("/api/v2/",) to spare the region preflight.
    fault_paths: tuple[str, ...] = ("/api/",)
    #: A careless server: every answer on the fault paths (2xx, 207, 4xx, 429, 5xx) carries the
    #: request's Authorization header and the key decoded from it in its texts.
    echo_credentials: bool = False
    #: How many more answers on the fault paths may go out; later ones wait (stats: ``held``)
    #: until this is set again. None: no limit. Lets a test hold a client mid-send for as long
    #: as it needs, instead of guessing a latency.
    answers_allowed: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate", "slow_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("latency", "slow_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive (null disables it)")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be at least 1")
        for name in ("max_request_bytes", "max_item_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.answers_allowed is not None and self.answers_allowed < 0:
            raise ValueError("answers_allowed must not be negative (null: no limit)")
        if self.request_log_size < 0:
            raise ValueError("request_log_size must not be negative")
        if not self.region:
            raise ValueError("region must not be empty")

    def updated(self, changes: Mapping[str, Any]) -> Settings:
        """A copy with ``changes`` applied; raises ValueError naming any bad key or value."""
        unknown = sorted(set(changes) - _CONVERTERS.keys())
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        converted = {name: _convert(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **converted)

    def as_dict(self) -> dict[str, Any]:
        """JSON-shaped: tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError("must be a finite number")
    return float(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("must be an integer")
    return value


def _as_prefixes(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and v.startswith("/") for v in value)
    ):
        raise TypeError("must be a list of path prefixes starting with /")
    return tuple(value)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("must be true or false")
    return value


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("must be a string")
    return value


# name -> (converter, whether null is allowed)
_CONVERTERS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "region": (_as_str, False),
    "max_request_bytes": (_as_int, False),
    "max_item_bytes": (_as_int, False),
    "request_log_size": (_as_int, False),
    "rate_limit": (_as_float, True),
    "rate_limit_burst": (_as_float, True),
    "error_rate": (_as_float, False),
    "drop_rate": (_as_float, False),
    "latency": (_as_float, False),
    "slow_rate": (_as_float, False),
    "slow_seconds": (_as_float, False),
    "slow_accepts": (_as_bool, False),
    "seed": (_as_int, True),
    "fault_paths": (_as_prefixes, False),
    "echo_credentials": (_as_bool, False),
    "answers_allowed": (_as_int, True),
}


def _convert(name: str, value: Any) -> Any:
    converter, nullable = _CONVERTERS[name]
    if value is None:
        if nullable:
            return None
        raise ValueError(f"{name} must not be null")
    try:
        return converter(value)
    except TypeError as exc:
        raise ValueError(f"{name} {exc}") from None
