"""Run the package's dbt example project (integration_tests/) the way a user would: the dbt
and cio-export commands each in a process of its own (started by preloaded.py), one target path
per build so builds never share state."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import preloaded

REPO = Path(__file__).resolve().parents[2]
INTEGRATION_TESTS = REPO / "integration_tests"
DBT = str(Path(sys.executable).with_name("dbt"))


class DbtFailed(AssertionError):
    pass


@dataclass
class DbtProject:
    """One build of integration_tests: its target, vars, artifacts and environment."""

    target: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    vars: dict | None = None
    state_schemas: list[str] = field(default_factory=list)  # made by cio_export(), dropped by the fixture
    fixture_env: dict[str, str] | None = None  # the environment of the last build of a stepped fixture

    @property
    def target_path(self) -> Path:
        return self.workdir / "target"

    def run(self, *args: str, check: bool = True, vars: dict | None = None, target_path: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
        """dbt with these arguments. A change of `vars` makes dbt parse the whole project again; a
        change of an environment variable in `env` re-parses only the files that read it (the
        fixtures' steps, CIO_FIXTURE_STEP, are read that way to keep builds short)."""
        ensure_deps()
        merged_vars = {**(self.vars or {}), **(vars or {})}
        cmd = [
            DBT,
            *args,
            "--project-dir",
            str(INTEGRATION_TESTS),
            "--profiles-dir",
            str(INTEGRATION_TESTS),
            "--target",
            self.target,
            "--target-path",
            str(target_path or self.target_path),
            "--log-path",
            str(self.workdir / "logs"),
        ]
        if merged_vars:
            cmd += ["--vars", json.dumps(merged_vars)]
        # No debug log file (dbt writes every statement to it: about 7% of a build's CPU); a
        # test that reads logs/dbt.log sets DBT_LOG_LEVEL_FILE in the project's env.
        full_env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_LOG_LEVEL_FILE": "none",
                    **self.env, **(env or {})}
        proc = preloaded.run("dbt", cmd[1:], env=full_env, cwd=self.workdir)
        if check and proc.returncode != 0:
            raise DbtFailed(
                f"dbt {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
            )
        return proc

    def cio_export(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        target_path: Path | None = None,
        state_schema: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run cio-export on this build as a user would, in a subprocess. Each call gets a fresh
        state schema unless `state_schema` names one (to rerun on the same state), or is ""
        (no --state-schema: cio-export finds it as users' runs do)."""
        cmd, full_env = self._cio_export_command(args, env, target_path, state_schema)
        return preloaded.run("cio-export", cmd[1:], env=full_env, cwd=self.workdir)

    def cio_export_process(self, *args: str, env: dict[str, str] | None = None, state_schema: str | None = None,
                           target_path: Path | None = None, **popen: Any) -> subprocess.Popen:
        """The same command as cio_export(), started and not waited for (to kill it, or to run
        something beside it)."""
        cmd, full_env = self._cio_export_command(args, env, target_path, state_schema)
        return subprocess.Popen(cmd, env=full_env, cwd=self.workdir, **popen)

    def _cio_export_command(
        self, args: tuple[str, ...], env: dict[str, str] | None, target_path: Path | None, state_schema: str | None
    ) -> tuple[list[str], dict[str, str]]:
        if state_schema is None:
            state_schema = f"cio_state_{uuid.uuid4().hex[:10]}"
        if state_schema and state_schema not in self.state_schemas:
            self.state_schemas.append(state_schema)
        cmd = [
            str(Path(sys.executable).with_name("cio-export")), *args,
            "--project-dir", str(INTEGRATION_TESTS),
            "--profiles-dir", str(INTEGRATION_TESTS),
            "--target", self.target,
            "--target-path", str(target_path or self.target_path),
        ]
        if state_schema and (args and args[0] in ("run", "reset") or not args or args[0].startswith("-")):
            cmd += ["--state-schema", state_schema]
        if self.vars:
            cmd += ["--vars", json.dumps(self.vars)]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOMERIO_")}
        full_env.update({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **self.env, **(env or {})})
        return cmd, full_env

    def manifest(self) -> dict:
        return json.loads((self.target_path / "manifest.json").read_text())

    def run_results(self) -> dict:
        return json.loads((self.target_path / "run_results.json").read_text())


def ensure_deps() -> None:
    """Install the package into integration_tests/dbt_packages (a link to the repo root), once:
    every build calls this, and pytest-xdist's workers take turns through a file lock."""
    installed = INTEGRATION_TESTS / "dbt_packages" / "cio_sync"
    if installed.exists():
        return
    with open(INTEGRATION_TESTS / ".dbt_deps.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed.exists():  # another worker installed it while this one waited
            return
        subprocess.run(
            [DBT, "deps", "--project-dir", str(INTEGRATION_TESTS), "--profiles-dir", str(INTEGRATION_TESTS)],
            check=True,
            capture_output=True,
            text=True,
            cwd=INTEGRATION_TESTS,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
