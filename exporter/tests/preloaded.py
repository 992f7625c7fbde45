"""Run `dbt` and `cio-export` as new processes that start with dbt already imported.

Importing dbt takes about 3 s of CPU, more than most of the suite's commands take to run, and the
suite runs a few hundred of them. Each command here is still a process of its own, with its own
arguments, environment, working directory, exit status and output, as a user's shell would start
it; the only difference is where it comes from: a fork of a server process (multiprocessing's
forkserver) that imported dbt, its adapters and cio_sync once and never ran anything. Commands a
test must signal or read while they run keep going through subprocess.Popen."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Imported once by the server: the CLIs and what their commands import when they run.
PRELOAD = [
    "dbt.cli.main",
    "dbt.task.build",
    "dbt.task.list",
    "dbt.adapters.duckdb",
    "dbt.adapters.postgres",
    "cio_sync.cli",
    "cio_sync._project.artifacts",
    "cio_sync._run.runner",
    "cio_sync._send.sinks",
    "cio_sync._state.store",
    "httpx",
    "rich.console",
    "rich.table",
    "preloaded_schemas",
]

_context: multiprocessing.context.ForkServerContext | None = None


def _forkserver() -> multiprocessing.context.ForkServerContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
        # The server imports PRELOAD with the interpreter's own sys.path (Python 3.11 hands it
        # the suite's only for the processes it forks) and skips a module it cannot find without
        # a word: preloaded_schemas, in this directory, reaches it through PYTHONPATH while it
        # starts.
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent), saved]))
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            if saved is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = saved
    return _context


def run(program: str, args: Sequence[str], *, env: Mapping[str, str], cwd: Path | str) -> subprocess.CompletedProcess:
    """`program args` (program: "dbt" or "cio-export") run to its end, as subprocess.run(...,
    capture_output=True, text=True) would: exit status, stdout and stderr. CIO_TEST_SUBPROCESS=1
    starts the console script instead (to rule this module out when something looks odd)."""
    if os.environ.get("CIO_TEST_SUBPROCESS") == "1":
        executable = str(Path(sys.executable).with_name(program))
        return subprocess.run([executable, *args], env=dict(env), cwd=cwd, capture_output=True, text=True)
    with tempfile.TemporaryDirectory(prefix="cli-") as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        command = (program, list(args), dict(env), str(cwd), str(out), str(err))
        process = _forkserver().Process(target=_main, args=command)
        process.start()
        process.join()
        return subprocess.CompletedProcess(
            [program, *args],
            process.exitcode if process.exitcode is not None else -1,
            out.read_text(errors="replace") if out.exists() else "",
            err.read_text(errors="replace") if err.exists() else "",
        )


def preloaded_modules() -> list[str]:
    """The modules of PRELOAD a forked process finds imported (all of them, unless the server
    could not import one)."""
    with tempfile.TemporaryDirectory(prefix="preload-") as tmp:
        found = Path(tmp, "found")
        process = _forkserver().Process(target=_list_preloaded, args=(str(found),))
        process.start()
        process.join()
        return found.read_text().split()


def _list_preloaded(path: str) -> None:
    Path(path).write_text(" ".join(name for name in PRELOAD if name in sys.modules))


def _main(program: str, args: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """The forked process: become the command, then run it as its console script would."""
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [program, *args]
    if program == "dbt":
        from dbt.cli.main import cli

        cli.main(args=args, prog_name="dbt")
    elif program == "cio-export":
        from cio_sync.cli import main

        main.main(args=args, prog_name="cio-export")
    else:
        raise ValueError(f"unknown program {program!r}")
