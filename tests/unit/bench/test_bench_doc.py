"""docs/benchmarks.md is what the stored benchmark results render: no figure edited in by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_document_is_what_the_stored_results_render() -> None:
    run = _runner()
    assert run.check() == 0


def test_a_hand_edit_is_caught_and_a_stored_reading_survives_a_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _runner()
    results, doc = tmp_path / "results", tmp_path / "benchmarks.md"
    results.mkdir()
    result = json.loads((ROOT / "bench" / "results" / "validate.json").read_text())
    result.pop("reading", None)
    (results / "validate.json").write_text(json.dumps(result))
    monkeypatch.setattr(run, "RESULTS", results)
    monkeypatch.setattr(run, "DOC", doc)
    monkeypatch.setattr(run, "ROOT", tmp_path)
    doc.write_text(run.render(run.stored_results()))
    assert run.check() == 0
    doc.write_text(doc.read_text() + "\nA figure typed in by hand: 0.1 s.\n")
    assert run.check() == 1
    note = tmp_path / "reading.md"
    note.write_text("**Reading.** What this run's figures mean.\n")
    assert run.add_reading("validate", note) == 0
    assert run.check() == 0  # the section is rendered again: the hand edit is gone
    doc.write_text(run.render(run.stored_results()))  # and a whole re-render keeps the reading
    assert run.check() == 0
    assert "A figure typed in by hand" not in doc.read_text()
    assert "**Reading.** What this run's figures mean." in doc.read_text()
    assert run.add_reading("nonesuch", note) == 2
