"""The one round-trip YAML editor of fleet files (ruamel.yaml): comments, quotes, key order and
the file's own list style stay, so a bot's pull request shows only the keys it meant to change.

    edit(path, lambda doc: doc["rollout"].pop("candidate", None))
    create(path, {"apiVersion": ..., "kind": "Model", ...}, header=modeline)

Used by rollbacks (reconciler), promotions (trainer) and the demo's hand-made changes. Reading
for checks goes through `yamlsafe` (strict, positions kept); this module only rewrites.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from linefleet_core.errors import UsageError

DEFAULT_SEQUENCE = (4, 2)
"""`sequence` and `offset` for a file with no block list to learn from: `- item` indented by
two under its key."""


def _yaml(text: str) -> Any:
    """A round-trip dumper whose list indentation is the file's own.

    Fleet files come in two common styles (`- item` flush under its key, or indented by two
    with the dash offset); rewriting one style into the other would turn a three-line change
    into a diff of the whole file. Lines are never re-wrapped (width 4096).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    _, indent, offset = load_yaml_guess_indent(text)
    sequence, dash = DEFAULT_SEQUENCE if indent is None or offset is None else (indent, offset)
    yaml = YAML()
    yaml.indent(mapping=2, sequence=sequence, offset=dash)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def node(value: Any) -> Any:
    """Plain dicts and lists as round-trip nodes, so they dump in block style like the file."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = node(v)
        return out
    if isinstance(value, list):
        return CommentedSeq([node(v) for v in value])
    return value


def edit(path: Path, change: Callable[[Any], None]) -> None:
    """Load `path`, let `change` edit the document in place, write it back atomically."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    yaml = _yaml(text)
    doc = yaml.load(text)
    change(doc)
    _write(path, yaml, doc)


def create(path: Path, doc: dict[str, Any], header: str = "") -> None:
    """Write a new fleet file holding `doc` in the style `edit` keeps (`header` first: a
    modeline or a comment), creating its folder."""
    yaml = _yaml("")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, yaml, node(doc), header)


def _write(path: Path, yaml: Any, doc: Any, header: str = "") -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(header)
        yaml.dump(doc, fh)
    tmp.replace(path)
