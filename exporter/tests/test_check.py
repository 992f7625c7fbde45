"""`cio-export check` in a pull request's CI: integration_tests' pr_* fixtures synced by a real
`cio-export run` to the Customer.io-compatible server (production's state), then changed as a
pull request changes them (CIO_PR_CHANGE) and built as CI builds them, into a schema of their own
with their own target path, and checked as a CI job checks them: a process, its exit code, its
report on stderr and its --json on stdout. On DuckDB, the example shop's own marts too, and
PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SEND_HISTORY, PgSchema, PostgresBuild

from cio_sync.fake_server import FakeCustomerIO

pytestmark = pytest.mark.xdist_group("check")  # one production per module, its pull requests built in turn

SITE, KEY = "site-check", "key-check-0123456789abcdef"
PR_MODELS = ("--select", "tag:cio_pr")


def credentials(srv) -> dict[str, str]:
    return {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": srv.url}


def production_state(project) -> str:
    """The state schema of the project's production sync."""
    return project.env["CIO_TEST_SCHEMA"] + "_prod_state"


def ci_schema(project) -> str:
    """The schema the project's pull requests are built into."""
    return project.env["CIO_TEST_SCHEMA"] + "_pr"


def sync_production(project, *selection: str) -> None:
    """Production: the project's build synced to a Customer.io-compatible server."""
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as server:
        proc = project.cio_export("run", *selection, env=credentials(server), state_schema=production_state(project))
        assert proc.returncode == 0, proc.stderr


def pull_request(project, *changes: str, select: tuple[str, ...] = PR_MODELS) -> Path:
    """The fixtures as a pull request changes them, built as CI builds them: into a schema of its
    own (CIO_TEST_SCHEMA), with a target path of its own, which is returned."""
    target = project.workdir / "pr" / ("_".join(changes) or "unchanged") / "target"
    project.run("build", *select, target_path=target,
                env={"CIO_TEST_SCHEMA": ci_schema(project), "CIO_PR_CHANGE": ",".join(changes) or "none"})
    return target


def check(project, target: Path, *args: str, select: tuple[str, ...] = PR_MODELS,
          env: dict[str, str] | None = None) -> tuple[int, dict | None, str]:
    """`cio-export check` of the build at `target` against production's state, on the CI target."""
    proc = project.cio_export("check", *select, "--state-schema", production_state(project), "--json", *args,
                              target_path=target, state_schema="",
                              env={"CIO_TEST_SCHEMA": ci_schema(project), **(env or {})})
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.stderr


def by_model(report: dict) -> dict[str, dict]:
    return {m["model"]: m for m in report["models"]}


@pytest.fixture(scope="module")
def production(duckdb_project_factory):
    """pr_people (4 people) and pr_events (2 events) built and synced by production."""
    project = duckdb_project_factory("check", vars={**SEND_HISTORY, "cio_exporter_fixtures": True})
    project.run("build", *PR_MODELS)
    sync_production(project, *PR_MODELS)
    return project


def state_contents(project) -> dict[str, list[str]]:
    state = production_state(project)
    tables = [t for (t,) in project.query("select table_name from information_schema.tables where table_schema = "
                                          f"'{state}' order by 1")]
    return {t: sorted(map(repr, project.query(f"select * from {state}.{t}"))) for t in tables}


def test_a_pull_request_that_changes_nothing_passes_and_the_check_writes_nothing(production):
    before = state_contents(production)
    assert before["cio_people_state"] and before["cio_event_ledger"] and before["cio_leases"] == []
    code, report, stderr = check(production, pull_request(production))
    assert code == 0, stderr
    assert report["ok"] and report["state_schema"] == production_state(production)
    assert {name: (m["verdict"], m["rows"], m["changed"], m["findings"]) for name, m in by_model(report).items()} == {
        "pr_people": ("ok", 4, 0, []), "pr_events": ("ok", 2, 0, [])}
    people = by_model(report)["pr_people"]
    assert people["relation"].endswith(f'"{ci_schema(production)}"."pr_people"')
    assert people["production_relation"].endswith('"main"."pr_people"')
    assert "0 would block, 0 would leave the sync, 0 new: exit 0" in stderr
    # Read-only: no lease taken, no scope, payload shape, run or anything else recorded.
    assert state_contents(production) == before


def test_a_changed_payload_shape_would_block_and_what_the_build_left_alone_is_not_checked(production):
    # As dbt's `state:modified+` builds it: the changed model alone.
    target = pull_request(production, "payload_shape", select=("--select", "pr_people"))
    code, report, stderr = check(production, target)
    assert code == 1, stderr
    people, events = by_model(report)["pr_people"], by_model(report)["pr_events"]
    assert people["verdict"] == "blocks" and report["would_block"] == ["pr_people"]
    [finding] = people["findings"]
    assert (finding["check"], finding["blocks"]) == ("payload_shape", True)
    assert finding["message"].startswith("payload shape changed (retyped: visits (integer -> text))")
    assert "--accept-schema-change" in finding["message"]
    assert (events["verdict"], events["findings"]) == ("not built", []) and report["not_built"] == ["pr_events"]
    assert "pr_people: WOULD BLOCK (payload_shape): payload shape changed (retyped: visits (integer -> text))" in stderr


def test_an_identifier_kind_change_would_block_each_model_and_nothing_else_is_compared(production):
    code, report, stderr = check(production, pull_request(production, "identifier_kind"))
    assert code == 1, stderr
    for name in ("pr_people", "pr_events"):
        [finding] = by_model(report)[name]["findings"]  # no removals nor identifier changes: keys of another kind
        assert finding["check"] == "identifier_kind" and finding["blocks"], finding
        assert finding["message"].startswith("identifier kind changed from id to email")
        assert f"cio-export reset --select {name}" in finding["message"]
    assert report["would_block"] == ["pr_events", "pr_people"]


def test_a_new_model_and_removals_within_their_cap_pass_and_beyond_it_would_block(production):
    """What production's run carries out without blocking passes (a synced model added, a person
    leaving within max_deletes), listed; two people leaving, over max_deletes 1, would block."""
    within = pull_request(production, "drop_one", "new")
    code, report, stderr = check(production, within)
    assert code == 0, stderr
    objects = by_model(report)["pr_objects"]
    assert (objects["verdict"], objects["change"], objects["rows"], objects["findings"]) == ("new", "new", 2, [])
    assert objects["notes"] == ["new to production: its first run would identify all 2 objects of it"]
    people = by_model(report)["pr_people"]
    [finding] = people["findings"]
    assert (finding["check"], finding["blocks"], finding["leaving"], finding["synced"], finding["action"]) == (
        "removals", False, 1, 4, "delete")
    assert "production's next run would delete them (within max_deletes, 1). Examples: 'c4'." in finding["message"]
    assert people["verdict"] == "ok" and "ok, deletes 1" in stderr
    assert report["new"] == ["pr_objects"] and "0 would block, 0 would leave the sync, 1 new: exit 0" in stderr

    code, report, stderr = check(production, pull_request(production, "drop"))
    assert code == 1, stderr
    [finding] = by_model(report)["pr_people"]["findings"]
    assert (finding["check"], finding["blocks"], finding["leaving"], finding["synced"]) == ("removals", True, 2, 4)
    assert finding["message"] == ("2 of 4 synced people left the model, over max_deletes (1): none was deleted. "
                                  "Check the model; raise max_deletes if this is intended. Examples: 'c3', 'c4'.")

    # What is read is what the checked build made: the first pull request's relation has been
    # rebuilt by the second's build since.
    code, report, stderr = check(production, within)
    assert code == 1
    [finding] = by_model(report)["pr_people"]["findings"]
    assert finding["check"] == "build_proof" and "was rebuilt by dbt invocation" in finding["message"]


def test_a_synced_model_the_pull_request_removes_fails_the_check(production):
    target = pull_request(production, "remove")
    code, report, stderr = check(production, target)
    assert code == 1, stderr
    events = by_model(report)["pr_events"]
    assert (events["verdict"], events["kind"], report["removed"]) == ("removed", "event", ["pr_events"])
    assert events["last_synced_at"].endswith("+00:00") and events["production_relation"].endswith('"pr_events"')
    [note] = events["notes"]
    assert note.startswith("production syncs it, this build does not: dbt disables it (enabled: false). "
                           "Production's next run leaves it out")
    assert "pr_events: production syncs it" in stderr and " UTC)" in stderr

    # With production's manifest (dbt's --state), what production syncs is what it selects there.
    code, report, stderr = check(production, target, "--state", str(production.target_path))
    assert code == 1 and report["removed"] == ["pr_events"], stderr
    assert report["production_artifacts"] == str(production.target_path)


def test_suppressions_over_their_cap_would_block_and_unsuppressions_are_listed(production):
    """suppressed_people (p1, p2) suppressed by production; the pull request's list has p2, p3, p4
    and p5 (three to suppress, over max_suppressions 2) and no longer p1 (unsuppressed: on_delete)."""
    production.run("build", "--select", "suppressed_people")
    sync_production(production, "--select", "suppressed_people")
    target = production.workdir / "pr" / "suppressions" / "target"
    production.run("build", "--select", "suppressed_people", target_path=target,
                   env={"CIO_TEST_SCHEMA": ci_schema(production), "CIO_FIXTURE_STEP": "2"})
    code, report, stderr = check(production, target, select=("--select", "suppressed_people"))
    assert code == 1, stderr
    findings = {f["check"]: f for f in by_model(report)["suppressed_people"]["findings"]}
    assert (findings["suppressions"]["blocks"], findings["suppressions"]["suppressed"]) == (True, 3)
    assert findings["suppressions"]["message"].startswith(
        "3 people would be suppressed, over max_suppressions (2): nobody was.")
    removals = findings["removals"]
    assert (removals["blocks"], removals["leaving"], removals["synced"], removals["action"]) == (
        False, 1, 2, "unsuppress")
    assert removals["message"] == ("1 of 2 synced suppressed people leave the model: production's next run would "
                                   "unsuppress them. Examples: 'p1'.")
    assert "blocks, unsuppresses 1" in stderr


def test_a_renamed_relation_would_block_as_a_relation_change(production):
    code, report, stderr = check(production, pull_request(production, "rename"))
    assert code == 1, stderr
    [finding] = by_model(report)["pr_people"]["findings"]
    assert finding["check"] == "relation" and finding["blocks"]
    assert finding["message"].startswith("its relation is named pr_customers, not pr_people: production's next run "
                                         "would read another relation than")
    assert "--accept-relation-change" in finding["message"]


def test_without_production_state_or_without_a_build_it_is_a_configuration_error(production, tmp_path):
    target = production.workdir / "pr" / "unchanged" / "target"
    if not target.exists():
        target = pull_request(production)
    proc = production.cio_export("check", *PR_MODELS, "--state-schema", "cio_state_nowhere", target_path=target,
                                 state_schema="", env={"CIO_TEST_SCHEMA": ci_schema(production)})
    assert proc.returncode == 2
    assert "no cio-export state in schema cio_state_nowhere" in proc.stderr and "--state-schema" in proc.stderr
    parsed = tmp_path / "target"
    parsed.mkdir()
    shutil.copy(target / "manifest.json", parsed / "manifest.json")  # as `dbt parse` leaves it: no run_results.json
    code, report, stderr = check(production, parsed)
    assert code == 2 and report is None
    assert f"{parsed} holds no dbt build to check: no run_results.json" in stderr
    code, report, stderr = check(production, target, "--state", str(tmp_path))
    assert code == 2 and f"--state {tmp_path}: no manifest.json there" in stderr


def test_an_invalid_meta_cio_in_the_pull_request_is_named_as_what_would_stop_production(production):
    target = production.workdir / "pr" / "unchanged" / "target"
    if not target.exists():
        target = pull_request(production)
    # Only the manifest is read for it: its meta.cio is refused before any relation is.
    code, report, stderr = check(production, target, select=("--select", "bad_meta"))
    assert code == 1, stderr
    [finding] = by_model(report)["bad_meta"]["findings"]
    assert finding["check"] == "meta_cio" and finding["blocks"]
    assert finding["message"].startswith("model bad_meta: invalid meta.cio")
    assert report["removed"] == []  # production's models are still synced by the project, outside this selection


def test_the_example_shop_unchanged_passes_with_every_kind_of_model(duckdb_build):
    """The package's marts (people, objects, relationships, devices, events) synced by production,
    then built again as a pull request that changes nothing: nothing would block or leave."""
    sync_production(duckdb_build, "--select", "tag:cio")
    target = duckdb_build.workdir / "pr_unchanged" / "target"
    try:
        duckdb_build.run("build", target_path=target, env={"CIO_TEST_SCHEMA": ci_schema(duckdb_build)})
        code, report, stderr = check(duckdb_build, target, select=("--select", "tag:cio"))
    finally:  # the session's build is shared: no second copy of its marts is left beside them
        import duckdb

        with duckdb.connect(duckdb_build.env["CIO_DUCKDB_PATH"]) as conn:
            conn.execute(f"drop schema if exists {ci_schema(duckdb_build)} cascade")
    assert code == 0, stderr
    verdicts = {m["model"]: (m["kind"], m["verdict"], m["findings"]) for m in report["models"]}
    kinds = {kind for kind, _, _ in verdicts.values()}
    assert kinds == {"people", "object", "relationship", "device", "event"}, verdicts
    assert {v for _, v, _ in verdicts.values()} == {"ok"} and all(not f for _, _, f in verdicts.values()), verdicts
    assert all(m["changed"] == 0 and m["rows"] for m in report["models"]), report["models"]


@pytest.fixture(scope="module")
def postgres_production(tmp_path_factory, pg_schema_factory):
    schema = pg_schema_factory("cio_check")
    project = PostgresBuild(
        target="postgres", workdir=tmp_path_factory.mktemp("check_pg"), env={"CIO_TEST_SCHEMA": schema.name},
        vars={**SEND_HISTORY, "cio_exporter_fixtures": True, "cio_state_schema": f"{schema.name}_builds"})
    project.schema = schema
    project.state_schemas += [f"{schema.name}_builds", ci_schema(project)]
    project.run("build", *PR_MODELS)
    sync_production(project, *PR_MODELS)
    yield project
    for name in project.state_schemas:
        PgSchema(name).drop()


#: Every transaction of the check's sessions read-only: PostgreSQL refuses any write.
READ_ONLY = {"PGOPTIONS": "-c default_transaction_read_only=on"}


@pytest.mark.postgres
def test_on_postgresql_the_check_compares_across_schemas_in_read_only_sessions(postgres_production):
    code, report, stderr = check(postgres_production, pull_request(postgres_production), env=READ_ONLY)
    assert code == 0 and {m["verdict"] for m in report["models"]} == {"ok"}, stderr
    target = pull_request(postgres_production, "drop", "payload_shape")
    code, report, stderr = check(postgres_production, target, env=READ_ONLY)
    assert code == 1, stderr
    findings = {f["check"]: f for f in by_model(report)["pr_people"]["findings"]}
    assert set(findings) == {"payload_shape", "removals"} and all(f["blocks"] for f in findings.values())
    assert (findings["removals"]["leaving"], findings["removals"]["synced"]) == (2, 4)
    assert by_model(report)["pr_events"]["verdict"] == "ok"
