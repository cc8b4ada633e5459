"""`linefleet schema` as a user runs it; the committed `schema/` must be current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linefleet.cli import main

REPO = Path(__file__).resolve().parents[2]
KINDS = {
    "site": "Site",
    "line": "Line",
    "edge-device": "EdgeDevice",
    "model": "Model",
    "policy": "Policy",
    "taxonomy": "Taxonomy",
}


def test_writes_one_schema_per_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--out", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{name}.schema.json" for name in KINDS)
    for name, kind in KINDS.items():
        schema = json.loads((tmp_path / "out" / f"{name}.schema.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == kind
        assert schema["properties"]["kind"]["const"] == kind
        assert schema["required"][0] == "apiVersion"
        assert schema["additionalProperties"] is False
    assert len(capsys.readouterr().out.splitlines()) == len(KINDS)


def test_output_is_deterministic(tmp_path: Path) -> None:
    main(["schema", "--out", str(tmp_path / "a")])
    main(["schema", "--out", str(tmp_path / "b")])
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_the_committed_schemas_are_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["schema", "--out", str(tmp_path)])
    for path in sorted(tmp_path.iterdir()):
        committed = REPO / "schema" / path.name
        assert committed.is_file(), f"schema/{path.name} is missing"
        assert committed.read_text() == path.read_text(), (
            f"schema/{path.name} is stale: run `linefleet schema --out schema` and commit"
        )
    capsys.readouterr()
    assert main(["schema", "--out", str(REPO / "schema"), "--check"]) == 0


def test_check_reports_a_stale_schema_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["schema", "--out", str(tmp_path)])
    (tmp_path / "line.schema.json").write_text("{}\n")
    (tmp_path / "site.schema.json").unlink()
    capsys.readouterr()
    assert main(["schema", "--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "line.schema.json: stale or missing" in out
    assert "site.schema.json: stale or missing" in out
    assert (tmp_path / "line.schema.json").read_text() == "{}\n"


def test_out_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["schema", "--out", str(target)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
