"""The promotion's edits of the fleet repo, through the one round-trip editor
(`linefleet_core.yamledit`): comments, quotes and key order stay.

add_model_version(path, entry)            # append to `versions:` of fleet/models/<name>.yaml
set_shadow_candidate(path, "surface-cnn@5")   # rollout.candidate of one line file
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linefleet_core.errors import UsageError
from linefleet_core.yamledit import edit, node


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
