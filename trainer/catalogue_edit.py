"""Round-trip YAML edits of the fleet repo (ruamel.yaml): comments, quotes and key order stay.

add_model_version(path, entry)            # append to `versions:` of fleet/models/<name>.yaml
set_shadow_candidate(path, "surface-cnn@5")   # rollout.candidate of one line file
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linefleet_core.errors import UsageError


def _yaml(text: str) -> Any:
    """A round-trip loader whose list indentation is the file's own.

    Fleet files come in two common styles (`- item` flush under its key, or indented by two
    with the dash offset); rewriting one style into the other would turn a three-line change
    into a diff of the whole file. The style is guessed from the file; a file with no block
    list gets `mapping=2, sequence=4, offset=2`.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    _, indent, offset = load_yaml_guess_indent(text)
    yaml = YAML()
    if indent is None or offset is None:
        yaml.indent(mapping=2, sequence=4, offset=2)
    else:
        yaml.indent(mapping=2, sequence=indent, offset=offset)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _to_ruamel(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _to_ruamel(v)
        return out
    if isinstance(value, list):
        return CommentedSeq([_to_ruamel(v) for v in value])
    return value


def _edit(path: Path, change: Any) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    yaml = _yaml(text)
    doc = yaml.load(text)
    change(doc)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        yaml.dump(doc, fh)
    tmp.replace(path)


def add_model_version(path: Path, entry: dict[str, Any]) -> None:
    def change(doc: Any) -> None:
        versions = doc.get("versions")
        if versions is None:
            raise UsageError(f"{path}: no `versions:` list to append to")
        versions.append(_to_ruamel(entry))

    _edit(path, change)


def set_shadow_candidate(path: Path, ref: str) -> None:
    """Put `ref` in shadow as the line's candidate (replacing a shadow candidate)."""

    def change(doc: Any) -> None:
        rollout = doc["rollout"]
        candidate = _to_ruamel({"model": ref, "stage": "shadow"})
        if "candidate" in rollout:
            rollout["candidate"] = candidate
        else:
            keys = list(rollout.keys())
            at = keys.index("serving") + 1 if "serving" in keys else len(keys)
            rollout.insert(at, "candidate", candidate)

    _edit(path, change)


def set_version_evaluation(path: Path, version: int, evaluation: dict[str, Any]) -> None:
    """Merge per-line evidence into the `evaluation` of an existing catalogue version."""

    def change(doc: Any) -> None:
        for entry in doc.get("versions") or []:
            if entry.get("version") == version:
                held = entry.get("evaluation")
                if held is None:
                    entry["evaluation"] = _to_ruamel(evaluation)
                else:
                    for key, value in evaluation.items():
                        held[key] = _to_ruamel(value)
                return
        raise UsageError(f"{path}: no version {version} to add evidence to")

    _edit(path, change)


def new_model_family(path: Path, name: str, entry: dict[str, Any], description: str = "") -> None:
    """Write `fleet/models/<name>.yaml` for a family the catalogue does not have yet."""
    from ruamel.yaml import YAML

    doc = _to_ruamel(
        {
            "apiVersion": "linefleet.io/v1",
            "kind": "Model",
            "name": name,
            "description": description,
            "versions": [entry],
        }
    )
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write("# yaml-language-server: $schema=../../schema/model.schema.json\n")
        yaml.dump(doc, fh)
    tmp.replace(path)
