"""The gates: a model is sent only if the dbt invocation whose results are read built it
successfully and its tests passed (or only warned); every other outcome says why and what to
do."""

from __future__ import annotations

from dataclasses import dataclass

from .artifacts import RUN_RESULTS_FILE, Artifacts

# Test results that let a model through, and the one of them that is reported as a warning.
_PASSING_TEST_STATUSES = frozenset({"pass", "warn"})
_MODEL_SUCCESS = "success"
# dbt commands that write run_results.json with "success" for models they did not build.
_NON_BUILDING_COMMANDS = frozenset({"compile", "show", "docs", "generate", "parse", "list", "ls", "run-operation",
                                    "debug", "source", "freshness"})  # fmt: skip
_REBUILD_ADVICE = (
    "run `dbt build` (models and their tests in one invocation) right before cio-export; give any "
    "dbt command run in between its own --target-path (e.g. `dbt run-operation print_sync_summary "
    "--target-path target/summary`), since every dbt command replaces target/run_results.json"
)


@dataclass(frozen=True)
class Gate:
    """Whether a model's last build allows a sync. Test lists hold test unique_ids."""

    unique_id: str
    passed: bool
    reason: str | None
    failing_tests: tuple[str, ...] = ()
    warning_tests: tuple[str, ...] = ()



def _test_label(artifacts: Artifacts, unique_id: str) -> str:
    try:
        return artifacts.node(unique_id).get("name") or unique_id
    except KeyError:
        return unique_id


def build_problem(artifacts: Artifacts) -> str | None:
    """Why the artifacts are not those of one dbt invocation that built and tested models (no
    run_results.json, one from another invocation than manifest.json, from a command that builds
    nothing or tests only, from a build with --empty), or None: what no model of them passes."""
    if artifacts.run_results is None:
        where = artifacts.target_path / RUN_RESULTS_FILE if artifacts.target_path else RUN_RESULTS_FILE
        return f"no run_results.json ({where}): run `dbt build` before exporting"
    results_invocation = artifacts.run_results_invocation_id
    if results_invocation != artifacts.invocation_id:
        return (f"run_results.json is from invocation {results_invocation}, "
                f"manifest.json from {artifacts.invocation_id}: run `dbt build` again before exporting")
    command = (artifacts.run_results.get("args") or {}).get("which")
    if command in _NON_BUILDING_COMMANDS:
        return f"run_results.json is from `dbt {command}`, which builds no model: {_REBUILD_ADVICE}"
    if command == "test":
        # After `dbt run` then `dbt test`, nothing in the artifacts shows that the tests ran on
        # the relation the run built and that no other build replaced it in between: run_results
        # of the run is gone, and the tests' results name no build.
        return ("run_results.json is from `dbt test`, which builds no model: cio-export needs the "
                "model's build and its tests in one invocation, so that the tests it checks are the "
                f"tests of the rows it sends; {_REBUILD_ADVICE}")
    if (artifacts.run_results.get("args") or {}).get("empty") is True:
        return "run_results.json is from a build with --empty: run `dbt build` without it"
    return None


def gate(artifacts: Artifacts, unique_id: str, *, ignore_test_failures: bool = False) -> Gate:
    """A model passes only when run_results.json comes from the same dbt invocation as
    manifest.json, holds a ``success`` result for it, and every test attached to it (data tests
    and unit tests depending on it) has a ``pass`` or ``warn`` result in that run. No result means
    no sync. ``ignore_test_failures`` lets failing tests through (they stay listed), never a failed
    or missing model result."""

    def fail(reason: str, failing: tuple[str, ...] = (), warning: tuple[str, ...] = ()) -> Gate:
        return Gate(unique_id, False, reason, failing, warning)

    problem = build_problem(artifacts)
    if problem is not None:
        return fail(problem)
    assert artifacts.run_results is not None  # (build_problem says so otherwise)
    results_invocation = artifacts.run_results_invocation_id
    command = (artifacts.run_results.get("args") or {}).get("which")

    model_result = artifacts.result(unique_id)
    if model_result is None:
        return fail(f"the last dbt command (`dbt {command or '?'}`, invocation {results_invocation}) did not "
                    f"build this model: no result for it in run_results.json; {_REBUILD_ADVICE}")
    status = model_result.get("status")
    if status != _MODEL_SUCCESS:
        message = model_result.get("message")
        return fail(f"model status {status}" + (f": {message}" if message else ""))

    failing: list[str] = []
    warning: list[str] = []
    problems: list[str] = []
    for test_id in artifacts.tests_for(unique_id):
        test_result = artifacts.result(test_id)
        label = _test_label(artifacts, test_id)
        if test_result is None:
            failing.append(test_id)
            problems.append(f"test {label} did not run (`dbt run` runs no tests: use `dbt build`)" if command == "run"
                            else f"test {label} has no result in run_results.json (was it excluded from the build?)")
            continue
        test_status = test_result.get("status")
        if test_status == "warn":
            warning.append(test_id)
        elif test_status not in _PASSING_TEST_STATUSES:
            failing.append(test_id)
            problems.append(f"test {label} failed" if test_status == "fail" else f"test {label} status {test_status}")
    failing_tests, warning_tests = tuple(failing), tuple(warning)
    if failing and not ignore_test_failures:
        return fail("; ".join(problems), failing_tests, warning_tests)
    return Gate(unique_id, True, None, failing_tests, warning_tests)
