from __future__ import annotations

from pathlib import Path

import pytest

from trainer.catalogue_edit import add_model_version, set_shadow_candidate

FLUSH = """\
# Toledo line 1: owned by the paint team
apiVersion: linefleet.io/v1
kind: Line
id: line-1
product: 'door-panel'  # p/n 4711
cameras:
- id: cam-1
  fps: 10.0
rollout:
  serving: surface-classifier@2   # since October
  previous: "surface-classifier@1"
"""

INDENTED = """\
apiVersion: linefleet.io/v1
kind: Model
name: surface-classifier
versions:
  - version: 1
    output_classes:
      - ok
      - scratch
"""


@pytest.mark.parametrize("text", [FLUSH, INDENTED])
def test_round_trip_without_change_is_byte_identical(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    if "rollout" in text:
        set_shadow_candidate(path, "surface-classifier@3")
        set_shadow_candidate(path, "surface-classifier@3")
    else:
        add_model_version(path, {"version": 2, "output_classes": ["ok", "scratch"]})
    after = path.read_text()
    assert after.startswith(text.split("rollout:")[0] if "rollout" in text else text)


def test_candidate_goes_after_serving_and_keeps_comments_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(FLUSH)
    set_shadow_candidate(path, "surface-classifier@3")
    assert path.read_text() == FLUSH.replace(
        "  serving: surface-classifier@2   # since October\n",
        "  serving: surface-classifier@2   # since October\n"
        "  candidate:\n    model: surface-classifier@3\n    stage: shadow\n",
    )
    set_shadow_candidate(path, "surface-classifier@4")  # replaces, does not duplicate
    assert path.read_text().count("candidate:") == 1 and "surface-classifier@4" in path.read_text()


def test_appended_version_uses_the_files_list_style(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(INDENTED)
    add_model_version(path, {"version": 2, "output_classes": ["ok", "dust"]})
    assert path.read_text() == INDENTED + (
        "  - version: 2\n    output_classes:\n      - ok\n      - dust\n"
    )
