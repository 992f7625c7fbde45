"""The artifacts of a dbt Cloud run: which step built the models (``dbt build``, or ``dbt run``
then ``dbt test``), how the run ended, and its ``manifest.json`` and ``run_results.json``
downloaded so the normal exporter can run with ``--target-path`` pointing there."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .._errors import ConfigError, RunNotSyncable
from .api import (
    _DBT_SUBCOMMANDS,
    _NODE_ERROR_STATUSES,
    _STATUS_NAMES,
    ERRORED_RUN_POLICIES,
    RUN_INFO_FILE,
    STATUS_CANCELLED,
    STATUS_ERROR,
    STATUS_QUEUED,
    STATUS_RUNNING,
    STATUS_STARTING,
    STATUS_SUCCESS,
    CloudSettings,
    DbtCloudClient,
    cloud_settings_from_env,
)

# --------------------------------------------------------------------------------------------
# Steps, artifacts and run classification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStep:
    index: int
    name: str
    command: str | None  # "dbt build --select tag:cio"
    subcommand: str | None  # "build"
    status: int | None

    @classmethod
    def from_api(cls, step: Mapping[str, Any]) -> RunStep:
        name = str(step.get("name") or "")
        quoted = re.search(r"`([^`]*)`", name)
        command = quoted.group(1).strip() if quoted else (name.strip() if name.strip().startswith("dbt ") else None)
        status = step.get("status")
        return cls(
            index=int(step.get("index") or 0),
            name=name,
            command=command,
            subcommand=dbt_subcommand(command) if command else None,
            status=status if isinstance(status, int) else None,
        )

    @property
    def ran(self) -> bool:
        return self.status in (STATUS_SUCCESS, STATUS_ERROR)

    def describe(self) -> str:
        return f"step {self.index} ({self.name})"


def dbt_subcommand(command: str) -> str | None:
    """``build`` for ``dbt --warn-error build -s x``; None when it is not a dbt command."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    if not tokens or tokens[0] != "dbt":
        return None
    for token in tokens[1:]:
        if token in _DBT_SUBCOMMANDS:
            return "docs" if token == "docs" else token
    return None


def choose_steps(run: Mapping[str, Any]) -> tuple[RunStep, RunStep | None]:
    """The step whose artifacts to sync from: the last ``dbt build`` that ran; else the last
    ``dbt run`` together with the first ``dbt test`` after it (their results are merged).
    The default artifacts of a run are its last step's, often ``dbt docs generate``, whose
    run_results.json builds nothing: that step is never chosen."""
    steps = sorted((RunStep.from_api(s) for s in run.get("run_steps") or () if isinstance(s, Mapping)),
                   key=lambda s: s.index)  # fmt: skip
    if not steps:
        raise ConfigError(
            f"run {run.get('id')}: dbt Cloud listed no steps for it (include_related=run_steps), so the step "
            "that built the models cannot be found"
        )

    def last_of(kind: str, after: int = 0) -> RunStep | None:
        candidates = [s for s in steps if s.subcommand == kind and s.index > after]
        ran = [s for s in candidates if s.ran]
        return (ran or candidates)[-1] if candidates else None

    build = last_of("build")
    if build is not None:
        return build, None
    run_step = last_of("run")
    if run_step is not None:
        tests = [s for s in steps if s.subcommand == "test" and s.index > run_step.index]
        return run_step, (tests[0] if tests else None)
    listed = "; ".join(f"{s.index}: {s.name}" for s in steps)
    raise ConfigError(
        f"run {run.get('id')}: no step ran `dbt build` or `dbt run` (steps: {listed}); add `dbt build` to the job"
    )


def classify_run(run: Mapping[str, Any], run_results: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """What a finished run means for syncing, with the reason:

    * ``success``: the run succeeded, or only a step after the build failed;
    * ``tests_failed``: the run errored only because tests failed (results ``fail``): the
      per-model gates block exactly the models those tests are attached to;
    * ``errored``: dbt could not build or run something (a node ``error``, or no run_results.json
      for the build step: it never ran or failed before writing results);
    * ``cancelled``.

    Raises ConfigError for a run that has not finished."""
    status = run.get("status")
    if run.get("is_cancelled") or status == STATUS_CANCELLED:
        return "cancelled", "the run was cancelled"
    if status in (STATUS_QUEUED, STATUS_STARTING, STATUS_RUNNING) or run.get("in_progress"):
        raise ConfigError(f"run {run.get('id')} has not finished ({_STATUS_NAMES.get(status, status)}): wait for it")
    if run_results is None:
        if status == STATUS_SUCCESS:
            return "success", None
        return "errored", "the build step wrote no run_results.json (it failed before building anything)"
    results = [r for r in run_results.get("results") or () if isinstance(r, Mapping)]
    errors = [r for r in results if r.get("status") in _NODE_ERROR_STATUSES]
    if errors:
        names = ", ".join(str(r.get("unique_id")) for r in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        return "errored", f"{len(errors)} node(s) errored: {names}{more}"
    if status == STATUS_SUCCESS:
        return "success", None
    failed = [r for r in results if r.get("status") == "fail"]
    if failed:
        return "tests_failed", f"{len(failed)} test(s) failed; models whose tests passed are synced"
    return "success", "the build step succeeded; a later step of the run failed"


@dataclass
class CloudRun:
    """A run whose artifacts were downloaded, and what they mean."""

    run_id: int
    job_id: int | None
    status: int | None
    status_humanized: str
    step: int
    step_name: str
    test_step: int | None
    classification: str
    reason: str | None
    target_path: Path
    invocation_id: str | None
    finished_at: str | None = None

    @property
    def syncable(self) -> bool:
        return self.classification in ("success", "tests_failed")

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job_id": self.job_id,
            "status": self.status,
            "status_humanized": self.status_humanized,
            "step": self.step,
            "step_name": self.step_name,
            "test_step": self.test_step,
            "classification": self.classification,
            "reason": self.reason,
            "target_path": str(self.target_path),
            "invocation_id": self.invocation_id,
            "finished_at": self.finished_at,
        }


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{what} from dbt Cloud is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{what} from dbt Cloud is not a JSON object")
    return document


def _merge_run_and_test(run_results: dict[str, Any], test_results: dict[str, Any], steps: str) -> dict[str, Any]:
    """One run_results.json from a `dbt run` step and the `dbt test` step after it, so the
    gates see the models' results and their tests' results together. The tests ran on the same
    commit in the same run; the merged file keeps the run step's invocation id (its manifest's)."""
    merged = dict(run_results)
    tested = {r.get("unique_id") for r in test_results.get("results") or () if isinstance(r, dict)}
    merged["results"] = [
        r for r in run_results.get("results") or () if isinstance(r, dict) and r.get("unique_id") not in tested
    ] + [r for r in test_results.get("results") or () if isinstance(r, dict)]
    metadata = dict(merged.get("metadata") or {})
    metadata["cio_sync_merged_steps"] = steps
    metadata["cio_sync_test_invocation_id"] = (test_results.get("metadata") or {}).get("invocation_id")
    merged["metadata"] = metadata
    return merged


def _pick_run(client: DbtCloudClient, run_id: int | str | None, job_id: int | str | None) -> dict[str, Any]:
    if (run_id is None) == (job_id is None):
        raise ConfigError("give exactly one of a dbt Cloud run id or a job id (its latest finished run)")
    if run_id is not None:
        return client.get_run(run_id)
    assert job_id is not None  # (exactly one of them)
    runs = client.latest_runs(job_id)
    done = (STATUS_SUCCESS, STATUS_ERROR, STATUS_CANCELLED)
    finished = [r for r in runs if r.get("is_complete") or r.get("status") in done]
    if not finished:
        raise ConfigError(f"job {job_id} has no finished run among its {len(runs)} most recent run(s)")
    return client.get_run(finished[0]["id"])


def fetch_run_artifacts(
    settings: CloudSettings,
    run_id: int | str | None = None,
    job_id: int | str | None = None,
    dest: Path | None = None,
    *,
    client: DbtCloudClient | None = None,
) -> CloudRun:
    """Download ``manifest.json`` and ``run_results.json`` of the run's build step into ``dest``
    (created if missing) and classify the run. ``job_id`` picks the job's latest finished run.
    Writes ``dbt_cloud_run.json`` describing the run next to them."""
    if dest is None:
        raise ConfigError("fetch_run_artifacts needs a destination directory")
    own = client is None
    client = client or DbtCloudClient(settings)
    try:
        run = _pick_run(client, run_id, job_id)
        rid = int(run.get("id") or run_id or 0)
        step, test_step = choose_steps(run)
        manifest = client.artifact(rid, "manifest.json", step.index)
        if manifest is None and run.get("status") == STATUS_SUCCESS:
            raise ConfigError(f"run {rid} {step.describe()} has no manifest.json (were artifacts saved?)")
        manifest_doc = _json_object(manifest, f"manifest.json of run {rid}") if manifest is not None else None
        results_raw = client.artifact(rid, "run_results.json", step.index) if manifest is not None else None
        run_results = _json_object(results_raw, f"run_results.json of run {rid}") if results_raw is not None else None
        if run_results is not None and test_step is not None:
            tests_raw = client.artifact(rid, "run_results.json", test_step.index)
            if tests_raw is not None:
                run_results = _merge_run_and_test(
                    run_results,
                    _json_object(tests_raw, f"run_results.json of run {rid} step {test_step.index}"),
                    f"{step.index}+{test_step.index}",
                )
    finally:
        if own:
            client.close()
    classification, reason = classify_run(run, run_results)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if manifest is not None:
        (dest / "manifest.json").write_bytes(manifest)
    if run_results is not None:
        (dest / "run_results.json").write_bytes(
            results_raw if test_step is None else orjson.dumps(run_results)  # type: ignore[arg-type]
        )
    job = run.get("job_definition_id") or (run.get("job") or {}).get("id")
    cloud_run = CloudRun(
        run_id=rid,
        job_id=int(job) if job is not None else None,
        status=run.get("status"),
        status_humanized=str(run.get("status_humanized") or _STATUS_NAMES.get(run.get("status"), "unknown")),
        step=step.index,
        step_name=step.name,
        test_step=test_step.index if test_step else None,
        classification=classification,
        reason=reason,
        target_path=dest,
        invocation_id=((manifest_doc or {}).get("metadata") or {}).get("invocation_id"),
        finished_at=run.get("finished_at"),
    )
    (dest / RUN_INFO_FILE).write_bytes(orjson.dumps(cloud_run.as_dict(), option=orjson.OPT_INDENT_2))
    return cloud_run


def prepare_cloud_target(
    run_id: int | str | None = None,
    job_id: int | str | None = None,
    dest: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    errored_runs: str = "skip",
    base_url: str | None = None,
    account_id: str | None = None,
    note: Callable[[str], None] | None = None,
) -> Path:
    """A target path holding the dbt Cloud run's artifacts, for ``cio-export run``: the one-liner
    behind ``run --dbt-cloud-run RUN_ID`` / ``--dbt-cloud-job JOB_ID``.

    Settings come from DBT_CLOUD_* (see :func:`cloud_settings_from_env`). Without ``dest`` a
    temporary directory is used and removed when the process exits. An errored or cancelled run
    raises :class:`RunNotSyncable` (exit 1) unless ``errored_runs="gate"``, which lets the
    per-model gates decide anyway. A run whose only problem is failing tests is synced: its
    gates block the models those tests belong to."""
    if errored_runs not in ERRORED_RUN_POLICIES:
        raise ConfigError(f"errored runs are handled with 'skip' or 'gate', not {errored_runs!r}")
    settings = cloud_settings_from_env(env, base_url=base_url, account_id=account_id)
    if dest is None:
        dest = Path(tempfile.mkdtemp(prefix="cio-export-dbt-cloud-"))
        import atexit

        atexit.register(shutil.rmtree, dest, True)
    cloud_run = fetch_run_artifacts(settings, run_id=run_id, job_id=job_id, dest=dest)
    say = note or (lambda message: print(message, file=sys.stderr))
    say(
        f"dbt Cloud run {cloud_run.run_id} (job {cloud_run.job_id}, {cloud_run.status_humanized}): artifacts of "
        f"step {cloud_run.step} ({cloud_run.step_name})"
        + (f" merged with the tests of step {cloud_run.test_step}" if cloud_run.test_step else "")
        + f"; {cloud_run.classification}" + (f": {cloud_run.reason}" if cloud_run.reason else "")
    )
    if not cloud_run.syncable:
        if errored_runs == "skip":
            raise RunNotSyncable(
                f"dbt Cloud run {cloud_run.run_id} {cloud_run.classification}"
                + (f" ({cloud_run.reason})" if cloud_run.reason else "")
                + ": nothing synced. Fix the run and sync a successful one"
                + (", or pass --errored-runs gate to let the per-model gates decide" if cloud_run.step else "")
            )
        if not (dest / "manifest.json").is_file():
            raise RunNotSyncable(f"dbt Cloud run {cloud_run.run_id} produced no artifacts: nothing to sync")
        say(f"--errored-runs gate: syncing the models of run {cloud_run.run_id} whose gates pass")
    return dest


