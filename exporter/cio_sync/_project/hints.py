"""What to say at the common wrong turns: a selection (or a model's name) that matched no synced
model (the synced models there are, and the closest name or tag to what was typed), and artifacts
older than the project's files (a `dbt build` not run since they changed)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from .artifacts import MANIFEST_FILE, Artifacts
from .model import node_meta

#: dbt's graph operators around a selector: `+name`, `name+`, `2+name`, `name+3`, `@name`.
_OPERATORS = re.compile(r"^(?:@|\d*\+)?(?P<selector>.*?)(?:\+\d*)?$")


def synced_models(artifacts: Artifacts) -> dict[str, list[str]]:
    """Name and tags of every enabled model with meta.cio in the manifest."""
    found: dict[str, list[str]] = {}
    for node in (artifacts.manifest_dict.get("nodes") or {}).values():
        if node.get("resource_type") != "model" or node_meta(node).get("cio") is None:
            continue
        if (node.get("config") or {}).get("enabled") is False:
            continue
        found[node["name"]] = sorted(node.get("tags") or [])
    return dict(sorted(found.items()))


def nothing_selected(select: Sequence[str], artifacts: Artifacts, selector: str | None = None) -> str:
    """The message for a selection (or a YAML selector) that matched no model with meta.cio."""
    models = synced_models(artifacts)
    selection = " ".join(select) or "(everything)"
    if selector:
        return (f"--selector {selector} matched no model with meta.cio: nothing to sync. "
                f"Synced models: {', '.join(models) or 'none'}.")
    if not models:
        return (
            f"--select {selection} matched no model with meta.cio, and this project's manifest has none: "
            "install the cio_sync package (packages.yml) or give a model a meta.cio, then run dbt build"
        )
    names, tags = list(models), sorted({tag for model_tags in models.values() for tag in model_tags})
    guesses: list[str] = []
    for item in (part for term in select for part in term.replace(",", " ").split()):
        bare = _OPERATORS.match(item).group("selector")  # type: ignore[union-attr]
        method, _, value = bare.rpartition(":")
        if method in ("", "fqn"):
            guesses += difflib.get_close_matches(value, names, n=1)
        elif method == "tag":
            guesses += [f"tag:{tag}" for tag in difflib.get_close_matches(value, tags, n=1)]
    hint = f" Did you mean {' or '.join(dict.fromkeys(guesses))}?" if guesses else ""
    listed = ", ".join(names)
    return f"--select {selection} matched no model with meta.cio: nothing to sync.{hint} Synced models: {listed}."


def no_such_model(name: str, artifacts: Artifacts) -> str:
    """The message for a model name (`explain MODEL`) that names no model with meta.cio."""
    models = synced_models(artifacts)
    guesses = difflib.get_close_matches(name, list(models), n=1)
    hint = f" Did you mean {guesses[0]}?" if guesses else ""
    return (f"no synced model named {name!r} (a model with meta.cio) in this project's manifest.{hint} "
            f"Synced models: {', '.join(models) or 'none'}.")


#: dbt_project.yml's keys of the directories dbt parses, with dbt's defaults.
_PROJECT_PATHS = {"model-paths": ["models"], "macro-paths": ["macros"], "seed-paths": ["seeds"],
                  "snapshot-paths": ["snapshots"], "test-paths": ["tests"], "analysis-paths": ["analyses"]}


def stale_manifest(project_dir: Path, artifacts: Artifacts) -> str | None:
    """A warning when a file dbt parses (dbt_project.yml, packages.yml, the project's models,
    macros, seeds, ...) changed after manifest.json was written, else None. The models are sent
    as that build made them; the warning says the project may no longer say the same."""
    if artifacts.target_path is None:
        return None
    manifest = artifacts.target_path / MANIFEST_FILE
    try:
        written = manifest.stat().st_mtime
        import yaml

        project = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    except (OSError, ValueError):
        return None
    files = [project_dir / name for name in ("dbt_project.yml", "packages.yml", "dependencies.yml")]
    for key, default in _PROJECT_PATHS.items():
        paths = project.get(key, default) if isinstance(project, dict) else default
        for path in paths if isinstance(paths, list) else default:
            files += [f for f in (project_dir / str(path)).rglob("*") if f.suffix in (".sql", ".yml", ".yaml", ".csv",
                                                                                      ".py", ".md")]
    newest = None
    for file in files:
        try:
            changed = file.stat().st_mtime
        except OSError:
            continue
        if changed > written and (newest is None or changed > newest[0]):
            newest = (changed, file)
    if newest is None:
        return None
    when = datetime.fromtimestamp(written, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"warning: {manifest} (written {when}) is older than {newest[1].relative_to(project_dir)}, changed since: "
            "what is sent is what that build made; run dbt build for the project as it is now")
