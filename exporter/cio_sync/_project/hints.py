"""What to say when a selection matched no synced model: the synced models there are, and the
closest name or tag to what was typed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from .artifacts import Artifacts
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


def nothing_selected(select: Sequence[str], artifacts: Artifacts) -> str:
    """The message for a selection that matched no model with meta.cio."""
    models = synced_models(artifacts)
    selection = " ".join(select) or "(everything)"
    if not models:
        return (
            f"--select {selection} matched no model with meta.cio, and this project's manifest has none: "
            "install the cio_sync package (packages.yml) or give a model a meta.cio, then run dbt build"
        )
    names, tags = list(models), sorted({tag for model_tags in models.values() for tag in model_tags})
    guesses: list[str] = []
    for item in (part for term in select for part in term.replace(",", " ").split()):
        selector = _OPERATORS.match(item).group("selector")  # type: ignore[union-attr]
        method, _, value = selector.rpartition(":")
        if method in ("", "fqn"):
            guesses += difflib.get_close_matches(value, names, n=1)
        elif method == "tag":
            guesses += [f"tag:{tag}" for tag in difflib.get_close_matches(value, tags, n=1)]
    hint = f" Did you mean {' or '.join(dict.fromkeys(guesses))}?" if guesses else ""
    listed = ", ".join(names)
    return f"--select {selection} matched no model with meta.cio: nothing to sync.{hint} Synced models: {listed}."
