"""cio_sync._project.artifacts on real dbt builds of integration_tests: selection agrees with `dbt ls`, gates
follow run_results.json, and the adapter comes from dbt's own profile loading."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import preloaded
import pytest
from dbt_project_runner import INTEGRATION_TESTS, DbtProject

from cio_sync._errors import ConfigError
from cio_sync._project.artifacts import (
    Artifacts,
    DbtContext,
    close_adapter,
    open_adapter,
    relation_for,
    relation_name,
    select_models,
)
from cio_sync._project.gates import gate

PEOPLE = "model.cio_sync.cio_people"
ORDER_PLACED = "model.cio_sync.cio_event_order_placed"

# (select, exclude) pairs checked against dbt ls. Every form here was verified with the dbt CLI.
SELECTIONS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("tag:cio",), ()),
    (("cio_people",), ()),
    (("cio_event_*",), ()),
    (("tag:cio",), ("cio_people",)),
    (("+cio_people",), ()),
    (("stg_cio__orders+",), ()),
    (("cio_sync.marts,config.materialized:view",), ()),
    (("cio_people cio_event_order_placed",), ()),
    (("cio_people", "cio_event_order_placed"), ()),
    # path: is relative to the root project, so it never reaches a package's models; dbt selects
    # a package folder by its fqn: "cio_sync.marts" (same as "fqn:cio_sync.marts").
    (("path:models/marts",), ()),
    (("cio_sync.marts",), ()),
    (("package:cio_sync,config.materialized:view",), ("cio_quarantine",)),
    (("tag:cio",), ("cio_event_order_placed+", "tag:nothing_has_this_tag")),
    (("no_such_model_anywhere",), ()),
    ((), ()),
]
INVALID_SELECTION = (("bogus_method:cio_people",), ())

# Runs dbt ls through dbt's own CLI entry point (a parse of the project included), once per
# selection, in a separate Python process: one interpreter start instead of one per selector.
DBT_LS_ORACLE = """
import json, sys
from dbt.cli.main import dbtRunner

base, cases, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
answers = []
for select, exclude in cases:
    args = ["ls", "--resource-type", "model", "--output", "json", "--output-keys", "unique_id", "--quiet", *base]
    if select:
        args += ["--select", *select]
    if exclude:
        args += ["--exclude", *exclude]
    result = dbtRunner().invoke(args)
    answers.append(
        {"success": result.success, "ids": sorted(json.loads(line)["unique_id"] for line in result.result or [])}
        if result.success
        else {"success": False, "ids": None, "error": str(result.exception)}
    )
with open(out, "w") as handle:
    json.dump(answers, handle)
"""


def dbt_args(project: DbtProject, target_path: Path) -> list[str]:
    return [
        "--project-dir",
        str(INTEGRATION_TESTS),
        "--profiles-dir",
        str(INTEGRATION_TESTS),
        "--target",
        project.target,
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path.parent / "logs"),
    ]


def context_for(project: DbtProject, **overrides) -> DbtContext:
    return DbtContext.create(
        INTEGRATION_TESTS,
        profiles_dir=INTEGRATION_TESTS,
        target=overrides.pop("target", project.target),
        target_path=project.target_path,
        vars=project.vars or {},
        **overrides,
    )


@pytest.fixture(scope="module")
def duckdb_env(duckdb_build):
    """The build's environment (CIO_DUCKDB_PATH, ...) in this process, for dbt's profile."""
    patcher = pytest.MonkeyPatch()
    for key, value in duckdb_build.env.items():
        patcher.setenv(key, value)
    yield duckdb_build
    patcher.undo()


@pytest.fixture(scope="module")
def ctx(duckdb_env) -> DbtContext:
    return context_for(duckdb_env)


@pytest.fixture(scope="module")
def artifacts(duckdb_env) -> Artifacts:
    return Artifacts.load(duckdb_env.target_path)


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


# ------------------------------------------------------------------------------------------------
# Selection
# ------------------------------------------------------------------------------------------------


def test_selection_agrees_with_dbt_ls(ctx, artifacts, duckdb_env, tmp_path, capfd):
    cases = [*SELECTIONS, INVALID_SELECTION]
    # dbt ls parses and rewrites manifest.json: give it a target path of its own (seeded with the
    # build's partial parse state so the parse is quick), never the build's.
    oracle_target = tmp_path / "oracle" / "target"
    oracle_target.mkdir(parents=True)
    shutil.copy(duckdb_env.target_path / "partial_parse.msgpack", oracle_target)
    answers_path = tmp_path / "oracle" / "answers.json"
    oracle = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DBT_LS_ORACLE,
            json.dumps(dbt_args(duckdb_env, oracle_target)),
            json.dumps(cases),
            str(answers_path),
        ],
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # One selection through the dbt CLI binary itself, alongside.
    cli_project = DbtProject(target=duckdb_env.target, workdir=tmp_path / "cli", env=duckdb_env.env)
    cli_project.workdir.mkdir()
    cli_project.target_path.mkdir()
    shutil.copy(duckdb_env.target_path / "partial_parse.msgpack", cli_project.target_path)
    cli_out: dict = {}

    def run_cli() -> None:
        cli_out["proc"] = cli_project.run(
            "ls", "--resource-type", "model", "--output", "json", "--output-keys", "unique_id", "--quiet",
            "--select", "tag:cio", "cio_quarantine", "--exclude", "cio_people",
        )  # fmt: skip

    cli_thread = threading.Thread(target=run_cli)
    cli_thread.start()

    ours = []
    for select, exclude in SELECTIONS:
        ours.append(select_models(ctx, artifacts, select, exclude))
    with pytest.raises(ConfigError, match="'bogus_method' is not a valid method name"):
        select_models(ctx, artifacts, *INVALID_SELECTION)
    cli_ours = select_models(ctx, artifacts, ("tag:cio", "cio_quarantine"), ("cio_people",))
    assert capfd.readouterr().out == "", "select_models must not print dbt's listing"

    _, stderr = oracle.communicate(timeout=120)
    cli_thread.join(timeout=120)
    assert oracle.returncode == 0, stderr[-3000:]
    answers = json.loads(answers_path.read_text())

    for (select, exclude), mine, theirs in zip(SELECTIONS, ours, answers[:-1], strict=True):
        assert theirs["success"], (select, exclude, theirs)
        assert mine == theirs["ids"], (select, exclude)
    assert answers[-1]["success"] is False and "not a valid method name" in answers[-1]["error"]

    cli_ids = sorted(json.loads(line)["unique_id"] for line in cli_out["proc"].stdout.splitlines() if line.strip())
    assert cli_ours == cli_ids
    assert "model.cio_sync.cio_quarantine" in cli_ours and PEOPLE not in cli_ours

    # The comparisons above are not between empty lists.
    by_case = dict(zip(SELECTIONS, ours, strict=True))
    tagged = by_case[(("tag:cio",), ())]
    assert len(tagged) == 11 and PEOPLE in tagged
    assert by_case[(("cio_people",), ())] == [PEOPLE]
    assert len(by_case[(("cio_event_*",), ())]) == 7
    assert by_case[(("tag:cio",), ("cio_people",))] == [uid for uid in tagged if uid != PEOPLE]
    upstream = by_case[(("+cio_people",), ())]
    assert PEOPLE in upstream and "model.cio_sync.stg_cio__orders" in upstream
    assert all(uid.startswith("model.") for uid in upstream), "seeds are not models"
    assert ORDER_PLACED in by_case[(("stg_cio__orders+",), ())]
    assert by_case[(("cio_sync.marts,config.materialized:view",), ())] == ["model.cio_sync.cio_quarantine"]
    assert by_case[(("cio_people cio_event_order_placed",), ())] == [ORDER_PLACED, PEOPLE]
    assert by_case[(("cio_people", "cio_event_order_placed"), ())] == [ORDER_PLACED, PEOPLE]
    assert by_case[(("path:models/marts",), ())] == []
    assert by_case[(("cio_sync.marts",), ())] == sorted([*tagged, "model.cio_sync.cio_quarantine"])
    assert by_case[(("package:cio_sync,config.materialized:view",), ("cio_quarantine",))] == [
        "model.cio_sync.int_cio__customers",
    ]
    assert ORDER_PLACED not in by_case[(("tag:cio",), ("cio_event_order_placed+", "tag:nothing_has_this_tag"))]
    assert by_case[(("no_such_model_anywhere",), ())] == []
    assert len(by_case[((), ())]) == 28


def test_selection_uses_the_loaded_manifest_without_parsing(ctx, artifacts, duckdb_env, capfd):
    # A tag that exists only in the in-memory manifest: a parse of the project could not know it.
    node = artifacts.manifest.nodes[PEOPLE]
    node.tags.append("cio_only_in_memory")
    before = snapshot(duckdb_env.target_path)
    cwd = os.getcwd()
    try:
        started = time.monotonic()
        selected = select_models(ctx, artifacts, ("tag:cio_only_in_memory",), ())
        elapsed = time.monotonic() - started
    finally:
        node.tags.remove("cio_only_in_memory")
    assert selected == [PEOPLE]
    assert elapsed < 10
    # Nothing in the build's target path is touched: no manifest.json, partial_parse.msgpack,
    # graph files or logs rewritten.
    assert snapshot(duckdb_env.target_path) == before
    assert os.getcwd() == cwd
    assert capfd.readouterr().out == ""


def test_context_defaults_and_vars(tmp_path, monkeypatch):
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    ctx = DbtContext.create(INTEGRATION_TESTS, vars="{cio_guardrail_fixtures: true, n: 3}")
    assert ctx.vars == {"cio_guardrail_fixtures": True, "n": 3}
    assert ctx.target_path == INTEGRATION_TESTS.resolve() / "target"
    assert ctx.profiles_dir is None and ctx.target is None
    assert DbtContext.create(INTEGRATION_TESTS, vars='{"a": [1, 2]}').vars == {"a": [1, 2]}
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "elsewhere"))
    assert DbtContext.create(INTEGRATION_TESTS).target_path == tmp_path / "elsewhere"
    with pytest.raises(ConfigError, match="--vars"):
        DbtContext.create(INTEGRATION_TESTS, vars="[1, 2]")


def test_missing_manifest_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="dbt build") as info:
        Artifacts.load(tmp_path / "target")
    assert str(tmp_path / "target" / "manifest.json") in str(info.value)


@pytest.mark.parametrize(
    ("command", "selection", "suggested"),
    [
        ((), ["cio_peple"], "Did you mean cio_people?"),
        ((), ["+cio_event_order_plcaed+"], "Did you mean cio_event_order_placed?"),
        (("status",), ["tag:co"], "Did you mean tag:cio?"),
        (("validate",), ["no_such_model_at_all"], None),
    ],
)
def test_a_selection_that_matches_no_synced_model_lists_them_and_suggests_the_closest(
    duckdb_build, command, selection, suggested
):
    proc = duckdb_build.cio_export(*command, "--select", *selection, *(() if command else ("--dry-run",)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "matched no model with meta.cio" in proc.stderr
    assert "Synced models: cio_devices, cio_event_cart_abandoned," in proc.stderr and "cio_people," in proc.stderr
    if suggested:
        assert suggested in proc.stderr
    else:
        assert "Did you mean" not in proc.stderr


def test_a_yaml_selector_is_resolved_by_dbt_and_refused_beside_select(duckdb_build, tmp_path):
    listed = duckdb_build.run("ls", "--selector", "people_and_orders", "--resource-type", "model", "--output", "name",
                              "--quiet", target_path=tmp_path / "ls").stdout.split()  # fmt: skip
    assert sorted(listed) == ["cio_event_order_placed", "cio_people"]
    proc = duckdb_build.cio_export("--selector", "people_and_orders", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["model"] for r in json.loads(proc.stdout)["results"]) == sorted(listed)
    status = duckdb_build.cio_export("status", "--selector", "people_and_orders", "--json")
    assert status.returncode == 0, status.stderr
    both = duckdb_build.cio_export("--selector", "people_and_orders", "--select", "cio_people", "--dry-run")
    assert both.returncode == 2 and "--selector people_and_orders cannot be combined with --select" in both.stderr
    unknown = duckdb_build.cio_export("--selector", "no_such_selector", "--dry-run")
    assert unknown.returncode == 2 and "no_such_selector" in unknown.stderr


def test_a_manifest_older_than_the_projects_files_is_named_with_the_file_that_changed(duckdb_build, tmp_path):
    fresh = duckdb_build.cio_export("--select", "cio_people", "--dry-run")
    assert fresh.returncode == 0 and "is older than" not in fresh.stderr, fresh.stderr
    older = tmp_path / "target"
    shutil.copytree(duckdb_build.target_path, older)
    changed = INTEGRATION_TESTS / "models" / "exporter_fixtures" / "_exporter_fixtures.yml"
    written = changed.stat().st_mtime - 3600
    os.utime(older / "manifest.json", (written, written))
    stale = duckdb_build.cio_export("--select", "cio_people", "--dry-run", target_path=older)
    assert stale.returncode == 0, stale.stderr
    assert f"warning: {older / 'manifest.json'} (written " in stale.stderr
    assert "is older than " in stale.stderr and "run dbt build for the project as it is now" in stale.stderr


def test_quiet_logs_only_what_went_wrong_and_json_logs_one_object_per_line(duckdb_build, tmp_path):
    quiet = duckdb_build.cio_export("--select", "cio_people", "cio_devices", "--dry-run", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr.strip() == "", quiet.stderr
    unbuilt = tmp_path / "target"
    shutil.copytree(duckdb_build.target_path, unbuilt)
    (unbuilt / "run_results.json").unlink()
    blocked = duckdb_build.cio_export("--select", "cio_people", "--dry-run", "-q", target_path=unbuilt)
    assert blocked.returncode == 1
    assert [line.split("  ", 1)[1].split(":")[:2] for line in blocked.stderr.splitlines()] == [
        ["cio_people", " BLOCKED, not synced"], ["cio_people", " blocked"]]

    logged = duckdb_build.cio_export("--select", "cio_people", "cio_devices", "--dry-run", "--log-format", "json")
    assert logged.returncode == 0, logged.stderr
    records = [json.loads(line) for line in logged.stderr.splitlines()]
    assert all({"ts", "level", "msg"} <= set(r) and r["ts"].endswith("+00:00") for r in records)
    figures = {r["model"]: r for r in records if "status" in r}
    assert set(figures) == {"cio_people", "cio_devices"}
    assert figures["cio_people"]["would_send"] == figures["cio_people"]["changed"] > 0
    assert records[-1]["exit_code"] == 0 and records[-1]["msg"].startswith("dry run, nothing sent: would send")
    failed = duckdb_build.cio_export("--select", "cio_peple", "--dry-run", "--log-format", "json")
    assert failed.returncode == 2
    last = json.loads(failed.stderr.splitlines()[-1])
    assert last["level"] == "error" and "Did you mean cio_people?" in last["msg"]


def test_outside_a_dbt_project_the_error_says_so_not_to_run_dbt_build(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTOMERIO_", "DBT_"))}
    outside = preloaded.run("cio-export", ["--select", "tag:cio", "--dry-run"], env=env, cwd=tmp_path)
    assert outside.returncode == 2
    assert f"No dbt project here: no dbt_project.yml in {tmp_path} or any directory above it" in outside.stderr
    assert "dbt build" not in outside.stderr
    elsewhere = preloaded.run("cio-export", ["status", "--project-dir", str(tmp_path)], env=env, cwd=INTEGRATION_TESTS)
    assert elsewhere.returncode == 2
    assert f"no dbt_project.yml in --project-dir {tmp_path}" in elsewhere.stderr


# ------------------------------------------------------------------------------------------------
# Gates
# ------------------------------------------------------------------------------------------------


def edited(artifacts: Artifacts, edit) -> Artifacts:
    """The same manifest with an edited copy of run_results.json (input data, not project code)."""
    run_results = copy.deepcopy(artifacts.run_results)
    edit(run_results)
    return Artifacts(artifacts.manifest, artifacts.manifest_dict, run_results, artifacts.target_path)


def set_status(unique_id: str, status: str):
    def edit(run_results: dict) -> None:
        hits = [r for r in run_results["results"] if r["unique_id"] == unique_id]
        assert hits, unique_id
        for result in hits:
            result["status"] = status

    return edit


def drop_result(unique_id: str):
    def edit(run_results: dict) -> None:
        run_results["results"] = [r for r in run_results["results"] if r["unique_id"] != unique_id]

    return edit


def test_every_synced_model_passes_after_a_good_build(ctx, artifacts):
    selected = select_models(ctx, artifacts, ("tag:cio",), ())
    assert len(selected) == 11
    for unique_id in selected:
        result = gate(artifacts, unique_id)
        assert result.passed, result
        assert (result.reason, result.failing_tests, result.warning_tests) == (None, (), ())
    assert artifacts.tests_for(PEOPLE), "cio_people has tests attached"


def test_gate_on_edited_run_results(artifacts):
    people_tests = artifacts.tests_for(PEOPLE)
    failing, warning = people_tests[0], people_tests[1]
    failing_name = artifacts.node(failing)["name"]

    broken = edited(artifacts, set_status(failing, "fail"))
    result = gate(broken, PEOPLE)
    assert not result.passed
    assert result.reason == f"test {failing_name} failed"
    assert result.failing_tests == (failing,)
    lenient = gate(broken, PEOPLE, ignore_test_failures=True)
    assert lenient.passed and lenient.failing_tests == (failing,)

    warned = gate(edited(artifacts, set_status(warning, "warn")), PEOPLE)
    assert warned.passed and warned.warning_tests == (warning,) and warned.failing_tests == ()

    errored = edited(artifacts, set_status(ORDER_PLACED, "error"))
    for ignore in (False, True):
        result = gate(errored, ORDER_PLACED, ignore_test_failures=ignore)
        assert not result.passed and result.reason.startswith("model status error")
    assert gate(errored, PEOPLE).passed, "one model's error does not fail the others"

    missing = edited(artifacts, drop_result(PEOPLE))
    for ignore in (False, True):
        result = gate(missing, PEOPLE, ignore_test_failures=ignore)
        assert not result.passed and result.reason.startswith(
            f"the last dbt command (`dbt build`, invocation {artifacts.invocation_id}) did not build this model")
        assert "run `dbt build`" in result.reason

    untested = gate(edited(artifacts, drop_result(failing)), PEOPLE)
    assert not untested.passed and "has no result" in untested.reason and untested.failing_tests == (failing,)

    def other_invocation(run_results: dict) -> None:
        run_results["metadata"]["invocation_id"] = "00000000-0000-0000-0000-000000000000"

    stale = gate(edited(artifacts, other_invocation), PEOPLE, ignore_test_failures=True)
    assert not stale.passed
    assert stale.reason.startswith(
        f"run_results.json is from invocation 00000000-0000-0000-0000-000000000000, "
        f"manifest.json from {artifacts.invocation_id}"
    )

    def compiled_only(run_results: dict) -> None:
        run_results["args"]["which"] = "compile"

    assert not gate(edited(artifacts, compiled_only), PEOPLE).passed


def test_gate_without_run_results(artifacts, tmp_path):
    shutil.copy(artifacts.target_path / "manifest.json", tmp_path / "manifest.json")
    loaded = Artifacts.load(tmp_path)
    assert loaded.run_results is None and loaded.invocation_id == artifacts.invocation_id
    assert loaded.node(PEOPLE)["name"] == "cio_people"
    result = gate(loaded, PEOPLE, ignore_test_failures=True)
    assert not result.passed and "no run_results.json" in result.reason


@pytest.fixture(scope="module")
def failing_build(duckdb_project_factory):
    """A real build whose quarantine-share tests fail: no quarantined row is tolerated."""
    project = duckdb_project_factory("duckdb_failing", vars={"cio_max_quarantine_share": 0})
    proc = project.run("build", check=False)
    assert proc.returncode != 0, "the strict quarantine share should fail the build"
    return project


def test_gate_on_a_failing_build(failing_build):
    artifacts = Artifacts.load(failing_build.target_path)
    results = {r["unique_id"]: r["status"] for r in artifacts.run_results["results"]}
    failed_tests = {uid for uid, status in results.items() if uid.startswith("test.") and status == "fail"}
    assert failed_tests
    tested_models = sorted(
        {
            parent
            for uid in failed_tests
            for parent in artifacts.node(uid)["depends_on"]["nodes"]
            if parent.startswith("model.")
        }
    )
    assert tested_models
    for model in tested_models:
        assert results[model] == "success"
        strict = gate(artifacts, model)
        assert not strict.passed and " failed" in strict.reason
        assert set(strict.failing_tests) <= failed_tests and strict.failing_tests
        lenient = gate(artifacts, model, ignore_test_failures=True)
        assert lenient.passed and lenient.failing_tests == strict.failing_tests
    # dbt build skips what is downstream of a failing test; skipped never syncs.
    assert results[PEOPLE] == "skipped"
    for ignore in (False, True):
        people = gate(artifacts, PEOPLE, ignore_test_failures=ignore)
        assert not people.passed and people.reason.startswith("model status skipped")


# ------------------------------------------------------------------------------------------------
# Adapter
# ------------------------------------------------------------------------------------------------


def people_columns(ctx: DbtContext, artifacts: Artifacts) -> list[str]:
    adapter = open_adapter(ctx, artifacts)
    try:
        node = artifacts.node(PEOPLE)
        relation = relation_for(adapter, node)
        assert str(relation) == relation_name(node)
        with adapter.connection_named("cio-export"):
            columns = [column.name for column in adapter.get_columns_in_relation(relation)]
            assert adapter.connections.get_thread_connection().handle is not None
        assert adapter.quote("customer_id") == '"customer_id"'
        return columns
    finally:
        close_adapter(adapter)


def test_open_adapter_duckdb(ctx, artifacts, duckdb_env):
    columns = people_columns(ctx, artifacts)
    assert columns[:2] == ["customer_id", "email"]
    expected = [
        name
        for (name,) in duckdb_env.query(
            "select column_name from information_schema.columns "
            "where table_name = 'cio_people' order by ordinal_position"
        )
    ]
    assert columns == expected  # and the database file is released again


@pytest.mark.postgres
def test_open_adapter_postgres(postgres_build, monkeypatch):
    for key, value in postgres_build.env.items():
        monkeypatch.setenv(key, value)
    ctx = context_for(postgres_build)
    artifacts = Artifacts.load(postgres_build.target_path)
    assert artifacts.node(PEOPLE)["schema"] == postgres_build.schema.name
    assert gate(artifacts, PEOPLE).passed
    columns = people_columns(ctx, artifacts)
    expected = postgres_build.query(
        "select column_name from information_schema.columns "
        f"where table_schema = '{postgres_build.schema.name}' and table_name = 'cio_people' order by ordinal_position"
    )
    assert columns == [name for (name,) in expected] and "customer_id" in columns


def test_open_adapter_wrong_target(ctx, artifacts):
    bad = DbtContext.create(ctx.project_dir, profiles_dir=ctx.profiles_dir, target="no_such_target")
    with pytest.raises(ConfigError, match="does not have a target named 'no_such_target'"):
        open_adapter(bad, artifacts)


def test_open_adapter_unreachable_database(artifacts, monkeypatch):
    # Nothing listens on port 1: dbt's connection error becomes a ConfigError.
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")
    ctx = DbtContext.create(INTEGRATION_TESTS, profiles_dir=INTEGRATION_TESTS, target="postgres")
    with pytest.raises(ConfigError, match="Cannot connect"):
        open_adapter(ctx, artifacts)


@pytest.mark.parametrize(
    "args, select, exclude",
    [
        (["--select", "cio_people", "+cio_event_order_placed", "--exclude", "cio_devices", "--dry-run"],
         ("cio_people", "+cio_event_order_placed"), ("cio_devices",)),
        (["-s", "cio_people tag:cio", "-s", "cio_devices"], ("cio_people", "tag:cio", "cio_devices"), ()),
        (["--exclude", "a", "b", "--select", "c"], ("c",), ("a", "b")),
        ([], (), ()),
    ],
)
def test_select_and_exclude_take_several_values_as_dbt_does(args, select, exclude):
    """`--select a b`, `-s "a b"` and repeated flags all mean what they mean to dbt."""
    import click
    from click.testing import CliRunner

    from cio_sync._cli.options import dbt_options, flatten

    seen = {}

    @click.command()
    @dbt_options
    @click.option("--dry-run", is_flag=True)
    def command(select, exclude, **_):
        seen.update(select=flatten(select), exclude=flatten(exclude))

    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert seen == {"select": select, "exclude": exclude}
