"""The suite's own set-up. Tests that share a build or a DuckDB file are grouped (xdist_group)
so that `make test` runs each group in one worker; a pytest-xdist that stops marking the groups
(see the pin in pyproject.toml) spreads them over the workers without a word, and they then
build their fixtures once per worker or fight over one file."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("suite_setup")
def test_grouped_tests_are_kept_together_by_pytest_xdist(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run with --dist loadgroup")
    assert request.node.nodeid.endswith("@suite_setup"), (
        f"pytest-xdist did not mark this test's group ({request.node.nodeid}): this pytest and pytest-xdist "
        "do not work together; see the pin in pyproject.toml")


def test_forked_commands_start_with_every_preloaded_module_imported():
    """dbt and cio-export are forked from a server that imported them (preloaded.py); a module
    the server could not import is skipped without a word, and every command then pays for it
    again (dbt's JSON schemas: about 2 s of CPU per build)."""
    import preloaded

    assert preloaded.preloaded_modules() == preloaded.PRELOAD
