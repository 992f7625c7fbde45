"""The tests of the last dbt build (its run_results.json), with the models each tests: what
`report` shows of the guardrail tests that gate the sync."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._project.artifacts import Artifacts

#: Worst first: how the tests are ordered.
STATUS_ORDER = ("error", "fail", "runtime error", "warn", "skipped", "pass", "success")


@dataclass(frozen=True)
class BuildTest:
    name: str
    unique_id: str
    models: tuple[str, ...]
    status: str
    failures: int | None
    message: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "unique_id": self.unique_id, "models": list(self.models), "status": self.status,
                "failures": self.failures, "message": self.message}


@dataclass
class BuildTests:
    invocation_id: str | None
    generated_at: str | None
    command: str | None
    tests: list[BuildTest] = field(default_factory=list)
    problem: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for test in self.tests:
            counts[test.status] = counts.get(test.status, 0) + 1
        return counts

    @property
    def not_passing(self) -> list[BuildTest]:
        return [t for t in self.tests if t.status not in ("pass", "success")]

    def as_dict(self) -> dict[str, Any]:
        return {"invocation_id": self.invocation_id, "generated_at": self.generated_at, "command": self.command,
                "counts": self.counts, "tests": [t.as_dict() for t in self.tests], "problem": self.problem}


def _tested_models(artifacts: Artifacts, node: dict) -> tuple[str, ...]:
    parents = (node.get("depends_on") or {}).get("nodes") or ()
    names = []
    for parent in parents:
        if parent.startswith("model."):
            try:
                names.append(artifacts.node(parent).get("name") or parent)
            except KeyError:
                names.append(parent.rsplit(".", 1)[-1])
    return tuple(sorted(set(names)))


def last_build_tests(artifacts: Artifacts) -> BuildTests:
    """Every data and unit test result of run_results.json, the worst first."""
    results = artifacts.run_results
    if results is None:
        return BuildTests(None, None, None, problem="no run_results.json next to the manifest: run `dbt build`")
    metadata = results.get("metadata") or {}
    found = []
    for result in results.get("results") or ():
        unique_id = str(result.get("unique_id") or "")
        if not unique_id.startswith(("test.", "unit_test.")):
            continue
        try:
            node = artifacts.node(unique_id)
        except KeyError:
            node = {}
        failures = result.get("failures")
        found.append(BuildTest(node.get("name") or unique_id, unique_id, _tested_models(artifacts, node),
                               str(result.get("status") or "unknown"), failures if isinstance(failures, int) else None,
                               result.get("message")))
    rank = {status: i for i, status in enumerate(STATUS_ORDER)}
    found.sort(key=lambda t: (rank.get(t.status, 2), t.name))
    return BuildTests(metadata.get("invocation_id"), metadata.get("generated_at"),
                      (results.get("args") or {}).get("which"), found)
