"""Run cio-export as if some packages were not installed: `python without_modules.py duckdb,boto3
-- ARGS...`. Importing one of them (or a module under it) fails as a missing package does."""

from __future__ import annotations

import sys


class _NotInstalled:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in self.names):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if __name__ == "__main__":
    blocked, _, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.meta_path.insert(0, _NotInstalled(blocked.split(",")))
    from cio_sync.cli import main

    main.main(args=args, prog_name="cio-export")
