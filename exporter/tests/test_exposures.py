"""`cio-export exposures` writes YAML dbt accepts: generated from the real build's manifest,
dropped into integration_tests/models under a unique name, then `dbt ls --select
+exposure:<name>` must list every synced model. The file is always removed afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import yaml
from click.testing import CliRunner
from dbt_project_runner import DBT, INTEGRATION_TESTS

from cio_sync._cli.ops import register
from cio_sync._ops.exposures import HEADER, build_exposures
from cio_sync._project.artifacts import Artifacts
from cio_sync.cli import main

register(main)

SYNCED = {
    "cio_people",
    "cio_event_order_placed",
    "cio_event_checkout_started",
    "cio_event_cart_abandoned",
    "cio_event_refund_issued",
    "cio_event_subscription_canceled",
    "cio_event_subscription_paused",
    "cio_event_replenishment_due",
    "cio_subscription_objects",
    "cio_subscription_relationships",
    "cio_devices",
}


def test_the_exposure_is_valid_for_dbt_and_depends_on_every_synced_model(duckdb_build, tmp_path):
    name = f"customerio_{uuid.uuid4().hex[:8]}"
    output = INTEGRATION_TESTS / "models" / f"_cio_exposures_test_{name}.yml"
    try:
        result = CliRunner().invoke(
            main,
            ["exposures", "--project-dir", str(INTEGRATION_TESTS), "--profiles-dir", str(INTEGRATION_TESTS),
             "--target", "duckdb", "--target-path", str(duckdb_build.target_path), "--name", name,
             "--owner-name", "Retention team", "--owner-email", "retention@example.com", "--output", str(output)],
            env={**duckdb_build.env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
            catch_exceptions=False,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        text = output.read_text()
        assert text.startswith(HEADER)
        [exposure] = yaml.safe_load(text)["exposures"]
        assert exposure["type"] == "application" and exposure["owner"] == {
            "name": "Retention team",
            "email": "retention@example.com",
        }
        assert sorted(exposure["depends_on"]) == sorted(f"ref('cio_sync', '{m}')" for m in SYNCED)

        env = {**os.environ, **duckdb_build.env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        listed = subprocess.run(
            [DBT, "ls", "--select", f"+exposure:{name}", "--resource-type", "model", "--output", "json",
             "--output-keys", "name", "--project-dir", str(INTEGRATION_TESTS), "--profiles-dir",
             str(INTEGRATION_TESTS), "--target", "duckdb", "--target-path", str(tmp_path / "target"),
             "--log-path", str(tmp_path / "logs"), "--quiet"],
            env=env, capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stdout + listed.stderr
        models = {json.loads(line)["name"] for line in listed.stdout.splitlines() if line.startswith("{")}
        assert SYNCED <= models
        assert "cio_quarantine" not in models  # not synced, not upstream of a synced model
    finally:
        output.unlink(missing_ok=True)


def test_one_exposure_per_model_and_existing_files_are_kept(duckdb_build, tmp_path):
    artifacts = Artifacts.load(duckdb_build.target_path)
    wanted = SYNCED | {"cio_quarantine"}
    ids = [n["unique_id"] for n in artifacts.manifest_dict["nodes"].values() if n["name"] in wanted]
    document = build_exposures(artifacts, ids, owner_name=None, owner_email="a@example.com", per_model=True)
    names = {e["name"] for e in document["exposures"]}
    assert names == {f"customerio_{m}" for m in SYNCED}
    people = next(e for e in document["exposures"] if e["name"] == "customerio_cio_people")
    assert people["depends_on"] == ["ref('cio_sync', 'cio_people')"]
    assert people["meta"]["cio_export"]["cio_people"] == {"kind": "people", "identifier": "id"}

    mine = tmp_path / "exposures.yml"
    mine.write_text("version: 2\n")
    result = CliRunner().invoke(
        main,
        ["exposures", "--project-dir", str(INTEGRATION_TESTS), "--profiles-dir", str(INTEGRATION_TESTS),
         "--target", "duckdb", "--target-path", str(duckdb_build.target_path), "--owner-name", "x",
         "--output", str(mine)],
        env={**duckdb_build.env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )  # fmt: skip
    assert result.exit_code == 2 and "was not written by cio-export exposures" in result.stderr
    assert mine.read_text() == "version: 2\n"
