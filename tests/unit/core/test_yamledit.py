"""The one round-trip YAML editor: only the keys a change names move in the file's text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from linefleet_core import yamledit
from linefleet_core.errors import UsageError

FLUSH = """\
# a line file, lists flush with their key
kind: Line
cameras:
- id: cam-1   # top camera
  taxonomy: 'surface@2'
rollout:
  serving: surface-classifier@2
  candidate:
    model: surface-classifier@3
    stage: canary
"""
INDENTED = FLUSH.replace("- id: cam-1", "  - id: cam-1").replace("\n  taxonomy", "\n    taxonomy")


def drop_candidate(doc: Any) -> None:
    doc["rollout"].pop("candidate")


@pytest.mark.parametrize("text", [FLUSH, INDENTED], ids=["flush", "indented"])
def test_an_edit_changes_only_what_it_names(tmp_path: Path, text: str) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(text)
    yamledit.edit(path, drop_candidate)
    expected = text.split("  candidate:\n")[0]
    assert path.read_text() == expected
    assert not list(tmp_path.glob("*.tmp"))


def test_added_mappings_dump_in_block_style(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("versions:\n  - version: 1\n")

    def add(doc: Any) -> None:
        doc["versions"].append(yamledit.node({"version": 2, "input": {"shape": [1, 3]}}))

    yamledit.edit(path, add)
    assert path.read_text() == (
        "versions:\n  - version: 1\n  - version: 2\n    input:\n      shape:\n        - 1\n        - 3\n"
    )


def test_an_unreadable_file_is_a_located_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"missing\.yaml: cannot read"):
        yamledit.edit(tmp_path / "missing.yaml", drop_candidate)


def test_create_writes_a_new_file_in_the_style_edit_keeps(tmp_path: Path) -> None:
    path = tmp_path / "fleet" / "models" / "m.yaml"
    header = "# yaml-language-server: $schema=../../schema/model.schema.json\n"
    doc = {"kind": "Model", "name": "m", "versions": [{"version": 1, "tags": ["a", "b"]}]}

    yamledit.create(path, doc, header=header)

    assert path.read_text(encoding="utf-8") == (
        header
        + "kind: Model\nname: m\nversions:\n  - version: 1\n    tags:\n      - a\n      - b\n"
    )
    before = path.read_text(encoding="utf-8")
    yamledit.edit(path, lambda d: None)  # an edit that changes nothing changes no byte
    assert path.read_text(encoding="utf-8") == before
    assert not list(path.parent.glob("*.tmp"))
