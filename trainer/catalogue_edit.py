"""The promotion's edits of the fleet repo, through the one round-trip editor
(`linefleet_core.yamledit`): comments, quotes and key order stay.

add_model_version(path, entry)            # append to `versions:` of fleet/models/<name>.yaml
set_shadow_candidate(path, "surface-classifier@5")   # rollout.candidate of one line file
set_novelty(path, "novelty-toledo-line-1", 2)  # rollout.novelty of one line file
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linefleet_core.errors import UsageError
from linefleet_core.fleetschema import modeline
from linefleet_core.yamledit import create, edit, node


def add_model_version(path: Path, entry: dict[str, Any]) -> None:
    def change(doc: Any) -> None:
        versions = doc.get("versions")
        if versions is None:
            raise UsageError(f"{path}: no `versions:` list to append to")
        versions.append(node(entry))

    edit(path, change)


def set_shadow_candidate(path: Path, ref: str) -> None:
    """Put `ref` in shadow as the line's candidate (replacing a shadow candidate)."""

    def change(doc: Any) -> None:
        rollout = doc["rollout"]
        candidate = node({"model": ref, "stage": "shadow"})
        if "candidate" in rollout:
            rollout["candidate"] = candidate
        else:
            keys = list(rollout.keys())
            at = keys.index("serving") + 1 if "serving" in keys else len(keys)
            rollout.insert(at, "candidate", candidate)

    edit(path, change)


def set_version_evaluation(path: Path, version: int, evaluation: dict[str, Any]) -> None:
    """Merge per-line evidence into the `evaluation` of an existing catalogue version."""

    def change(doc: Any) -> None:
        for entry in doc.get("versions") or []:
            if entry.get("version") == version:
                held = entry.get("evaluation")
                if held is None:
                    entry["evaluation"] = node(evaluation)
                else:
                    for key, value in evaluation.items():
                        held[key] = node(value)
                return
        raise UsageError(f"{path}: no version {version} to add evidence to")

    edit(path, change)


def new_model_family(path: Path, name: str, entry: dict[str, Any], description: str = "") -> None:
    """Write `fleet/models/<name>.yaml` for a family the catalogue does not have yet."""
    doc = {
        "apiVersion": "linefleet.io/v1",
        "kind": "Model",
        "name": name,
        "description": description,
        "versions": [entry],
    }
    create(path, doc, header=modeline(f"fleet/models/{name}.yaml", "Model"))


def set_novelty(path: Path, model: str, version: int) -> None:
    """Name `model@version` as the line's novelty model (`rollout.novelty`, replacing one)."""

    def change(doc: Any) -> None:
        rollout = doc["rollout"]
        ref = node({"model": model, "version": version})
        if "novelty" in rollout:
            rollout["novelty"] = ref
        else:
            rollout.insert(len(rollout), "novelty", ref)

    edit(path, change)
