"""`linefleet data generate`, run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory_sim import fleetgen
from linefleet.cli import main

TAXONOMY = """\
apiVersion: linefleet.io/v1
kind: Taxonomy
name: surface-defects
version: 2
classes:
  - {id: ok, definition: no defect, severity: none}
  - {id: scratch, definition: a thin line, severity: minor}
  - {id: dust, definition: particles, severity: minor}
  - {id: oil, definition: a dark smudge, severity: major}
  - {id: weld-spatter, definition: droplets, severity: major}
migration:
  - {split: contamination, into: [dust, oil]}
  - {add: weld-spatter}
"""


def _generate(*args: str) -> int:
    return main(["data", "generate", "--quiet", *args])


def test_generate_writes_frames_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    code = main(["data", "generate", "--out", str(out), "--sites", "2", "--lines", "1",
                 "--frames", "4", "--seed", "9", "--size", "48"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    assert "wrote 8 frames for 2 lines (toledo/line-1, dresden/line-1)" in captured.out
    assert "generating frames: 8/8" in captured.err
    info = json.loads((out / "dataset.json").read_text())
    assert info["classes"] == ["ok", "scratch", "dent", "contamination", "discoloration"]
    assert info["taxonomy"] is None and info["seed"] == 9 and info["frames"] == 8
    rows = [json.loads(r) for r in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert all((out / r["path"]).is_file() for r in rows)


def test_taxonomy_by_ref_labels_frames_with_its_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tax = tmp_path / "repo" / "taxonomies" / "surface-defects" / "v2.yaml"
    tax.parent.mkdir(parents=True)
    tax.write_text(TAXONOMY)
    out = tmp_path / "data"
    code = _generate("--out", str(out), "--sites", "1", "--lines", "1", "--frames", "3",
                     "--size", "32", "--taxonomy", "surface-defects@2",
                     "--repo", str(tmp_path / "repo"), "--defect-rate", "1")  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    assert "warning: class 'weld-spatter' has no dedicated defect painter" in captured.err
    rows = [json.loads(r) for r in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["taxonomy"] for r in rows} == {"surface-defects@2"}
    assert all(r["class"] != "ok" for r in rows)


def test_drift_events_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "data"
    code = _generate("--out", str(out), "--sites", "1", "--lines", "2", "--frames", "3",
                     "--size", "32", "--drift", "camera_bump:toledo/line-2:1",
                     "lighting_change:toledo/line-1:2")  # fmt: skip
    assert code == 0
    rows = [json.loads(r) for r in (out / "manifest.jsonl").read_text().splitlines()]
    drift = {(r["line"], r["seq"]): r["drift"] for r in rows}
    assert drift[("line-2", 0)] == []
    assert drift[("line-2", 1)] == ["camera_bump:toledo/line-2:1"]
    assert drift[("line-1", 2)] == ["lighting_change:toledo/line-1:2"]


def test_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    args = ["--out", str(out), "--frames", "2", "--size", "32"]
    assert _generate(*args) == 2
    assert "exists and is not empty; use --force" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"
    assert _generate(*args, "--force") == 0
    assert not (out / "precious.txt").exists()
    assert (out / "manifest.jsonl").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--frames", "0"], 2, "--frames must be >= 1, got 0"),
        (["--sites", "-1"], 2, "--sites must be >= 1"),
        (["--defect-rate", "1.5"], 2, "--defect-rate must be between 0 and 1"),
        (["--size", "8"], 2, "--size must be between 32 and 1024"),
        (["--drift", "camera_bump:toledo/line-1"], 2, "expected KIND:SITE/LINE:FRAME"),
        (["--drift", "flood:toledo/line-1:3"], 2, "unknown drift kind"),
        (["--drift", "camera_bump:atlantis/line-1:3"], 2, "unknown line 'atlantis/line-1'"),
        (["--classes", "ok,ok,dent"], 2, "duplicate class ids: ok"),
        (["--classes", "ok"], 2, "at least one defect class"),
        (["--taxonomy", "nowhere.yaml"], 1, "nowhere.yaml: no such file"),
        (["--taxonomy", "surface-defects@7"], 1, "no taxonomy file at"),
    ],
)
def test_bad_arguments_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    out = tmp_path / "data"
    assert _generate("--out", str(out), "--repo", str(tmp_path), *args) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_invalid_taxonomy_file_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "v1.yaml"
    bad.write_text(TAXONOMY.replace("severity: major}", "severity: huge}", 1))
    assert _generate("--out", str(tmp_path / "data"), "--taxonomy", str(bad)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:9:52: classes[3].severity:" in err


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "fleet-repo"
    shape = fleetgen.FleetShape(sites=2, lines_per_site=2, cameras_per_line=2, seed=3)
    fleetgen.write(fleetgen.generate(shape), repo)
    return repo


def test_generate_for_the_lines_and_cameras_of_a_fleet(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    code = _generate("--fleet", str(fleet_repo), "--out", str(out), "--frames", "2",
                     "--size", "32", "--drift", "camera_bump:toledo/line-2:1")  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "for 4 lines, 8 cameras (" in captured.out
    assert "labelled surface-defects@2" in captured.out
    info = json.loads((out / "dataset.json").read_text())
    assert info["taxonomy"] == "surface-defects@2"
    assert info["classes"] == ["ok", "scratch", "dent", "dust", "oil", "discoloration"]
    rows = [json.loads(r) for r in (out / "manifest.jsonl").read_text().splitlines()]
    streams = {(r["site"], r["line"], r["camera"]) for r in rows}
    assert streams == {(s, f"line-{n}", f"cam-{c}") for s in ("dresden", "toledo")
                       for n in (1, 2) for c in (1, 2)}  # fmt: skip
    bumped = [r for r in rows if r["line"] == "line-2" and r["site"] == "toledo" and r["seq"] == 1]
    assert [r["drift"] for r in bumped] == [["camera_bump:toledo/line-2:1"]] * 2
    out2 = tmp_path / "one"
    assert _generate("--fleet", str(fleet_repo), "--select", "dresden/line-1", "--out",
                     str(out2), "--frames", "2", "--size", "32") == 0  # fmt: skip
    rows = [json.loads(r) for r in (out2 / "manifest.jsonl").read_text().splitlines()]
    assert {(r["site"], r["line"]) for r in rows} == {("dresden", "line-1")}
    assert len(rows) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sites", "2"], "with --fleet, use --select instead"),
        (["--select", "toledo/line-9"], "unknown line(s): toledo/line-9"),
    ],
)
def test_bad_fleet_arguments(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    message: str,
) -> None:  # fmt: skip
    out = tmp_path / "data"
    assert _generate("--fleet", str(fleet_repo), "--out", str(out), *args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_select_needs_a_fleet_and_a_broken_fleet_is_located(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert _generate("--select", "toledo/line-1", "--out", str(out)) == 2
    assert "--select needs --fleet" in capsys.readouterr().err
    line = fleet_repo / "fleet" / "sites" / "toledo" / "lines" / "line-1.yaml"
    line.write_text(line.read_text().replace("conveyor_side:", "conveyor_sid:", 1))
    assert _generate("--fleet", str(fleet_repo), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "fleet/sites/toledo/lines/line-1.yaml:" in err and "conveyor_sid" in err
    assert not out.exists()


def test_same_seed_same_bytes_from_the_cli(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert _generate("--out", str(tmp_path / name), "--frames", "3", "--size", "40") == 0
    for name in ("manifest.jsonl", "dataset.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_fleet_without_its_taxonomy_file(
    fleet_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in (fleet_repo / "taxonomies").rglob("v2.yaml"):
        path.unlink()
    out = tmp_path / "data"
    assert _generate("--fleet", str(fleet_repo), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "the lines' taxonomy surface-defects@2: no taxonomy file at" in err
    assert not out.exists()


def test_summary_counts_classes_and_drift_per_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert _generate("--out", str(out), "--sites", "1", "--lines", "2", "--frames", "20",
                     "--size", "32", "--drift", "camera_bump:toledo/line-2:5:3") == 0  # fmt: skip
    capsys.readouterr()
    assert main(["data", "summary", str(out), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = [json.loads(r) for r in (out / "manifest.jsonl").read_text().splitlines()]
    assert doc["frames"] == 40 and [s["line"] for s in doc["streams"]] == [
        "toledo/line-1", "toledo/line-2"
    ]  # fmt: skip
    for stream in doc["streams"]:
        mine = [r["class"] for r in rows if f"{r['site']}/{r['line']}" == stream["line"]]
        assert stream["classes"] == {c: mine.count(c) for c in doc["classes"]}
        assert stream["defect_rate"] == pytest.approx(1 - mine.count("ok") / 20)
    assert doc["streams"][1]["drift"] == ["camera_bump:toledo/line-2:5:3"]
    assert main(["data", "summary", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == [
        "line", "camera", "frames", "defects", "ok", "scratch", "dent", "contamination",
        "discoloration", "drift",
    ]  # fmt: skip
    assert "camera_bump:toledo/line-2:5:3" in text
    assert text.rstrip().endswith("40 frames, 2 camera streams, labelled a plain class list")


def test_summary_of_something_else(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "summary", str(tmp_path)]) == 2
    assert "not a generated dataset (no dataset.json)" in capsys.readouterr().err
    (tmp_path / "dataset.json").write_text('{"format": "other"}')
    assert main(["data", "summary", str(tmp_path)]) == 1
    assert "unreadable dataset" in capsys.readouterr().err
