"""Installing cio-sync for one warehouse: the extra of that warehouse brings its dbt adapter and
no other, cio-export runs with only that adapter, and a profile whose adapter is missing gets an
error naming the extra to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dbt_project_runner import REPO

OTHER_WAREHOUSES = {
    "postgres": ["dbt.adapters.duckdb", "dbt.include.duckdb", "duckdb", "dbt.adapters.redshift",
                 "dbt.include.redshift", "redshift_connector", "boto3", "botocore"],
    "duckdb": ["dbt.adapters.duckdb", "dbt.include.duckdb", "duckdb"],
}


def cio_export_without(build, blocked: list[str], *args: str) -> subprocess.CompletedProcess:
    """cio-export on `build` in a process where the `blocked` packages are not installed."""
    cmd, env = build._cio_export_command(args, None, None, None)
    runner = str(Path(__file__).with_name("without_modules.py"))
    return subprocess.run([sys.executable, runner, ",".join(blocked), "--", *cmd[1:]], env=env,
                          cwd=build.workdir, capture_output=True, text=True)  # fmt: skip


def test_the_postgres_extra_brings_the_postgres_adapter_and_no_other_warehouse(tmp_path):
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--report", str(report),
         f"{REPO}[postgres]"],
        check=True, capture_output=True, text=True, env={**os.environ, "PIP_NO_INPUT": "1"},
    )  # fmt: skip
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"cio-sync", "dbt-core", "dbt-postgres"} <= names
    assert not names & {"dbt-duckdb", "duckdb", "dbt-redshift", "redshift-connector", "boto3"}


def test_with_only_the_postgres_adapter_a_sync_runs_against_postgres(postgres_build):
    proc = cio_export_without(postgres_build, OTHER_WAREHOUSES["postgres"], "--select", "tag:cio", "--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dry run, nothing sent: would send" in proc.stderr


@pytest.mark.parametrize("command", [(), ("status",)])
def test_a_target_whose_adapter_is_not_installed_names_the_extra_to_install(duckdb_build, command):
    proc = cio_export_without(duckdb_build, OTHER_WAREHOUSES["duckdb"], *command, "--select", "tag:cio", "--dry-run"
                              if not command else "--json")  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert ("target duckdb is a duckdb warehouse, but its dbt adapter (dbt-duckdb) is not installed: "
            "pip install 'cio-sync[duckdb]'") in proc.stderr  # fmt: skip
    assert "unexpected" not in proc.stderr


def test_the_python_and_dbt_packages_carry_one_version():
    import importlib.metadata

    import yaml

    import cio_sync

    dbt_version = str(yaml.safe_load((REPO / "dbt_project.yml").read_text())["version"])
    assert dbt_version == cio_sync.__version__ == importlib.metadata.version("cio-sync")


def test_the_package_data_holds_every_file_of_the_status_page():
    """The page is made from package data (templates, script, style, the vendored uPlot and its
    licence): each of its files is matched by pyproject.toml's package-data, so wheels carry it."""
    import fnmatch

    import tomllib

    import cio_sync

    root = Path(cio_sync.__file__).parent
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cio_sync"]
    files = [p.relative_to(root).as_posix() for p in (root / "_ops" / "report").rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert "_ops/report/vendor/uplot/uPlot.iife.min.js" in files and "_ops/report/vendor/uplot/LICENSE" in files
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []
