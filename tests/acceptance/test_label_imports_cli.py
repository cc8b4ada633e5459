"""`labels import` of folder trees and MVTec AD categories, checked against the fleet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from linefleet.cli import main
from linefleet_core.imagefile import MAX_FILE_BYTES
from tests.support.minifleet import write_minifleet
from tests.support.trainer_data import gif_declaring, png

pytestmark = pytest.mark.acceptance


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_minifleet(tmp_path / "fleet-repo")  # toledo/line-1 (cam-1, cam-2), line-2, dresden/...
    return tmp_path / "fleet-repo"


def lf(repo: Path, *args: str) -> int:
    state = repo.parent / "state"
    return main(["labels", *args, "--state", str(state), "--fleet-repo", str(repo)])


def _images(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i:03d}.png").write_bytes(png(seed * 100 + i))


def _dataset(repo: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert lf(repo, "dataset", "--taxonomy", "surface-defects@2", "--format", "json") == 0
    doc: dict[str, object] = json.loads(capsys.readouterr().out)
    return doc


def test_a_folder_per_class_with_line_levels_and_site_by_flag(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "tree"
    _images(root / "line-1" / "ok", 3, 1)
    _images(root / "line-1" / "scratch", 2, 2)
    _images(root / "line-2" / "dust", 2, 3)
    args = ["import", str(root), "--levels", "line/class", "--site", "toledo"]
    args += ["--camera", "cam-1", "--annotator", "ana", "--taxonomy", "surface-defects@2"]
    assert lf(repo, *args) == 0
    assert "imported 7 annotation(s), 7 new frame(s) (folder)" in capsys.readouterr().out
    doc = _dataset(repo, capsys)
    assert doc["frames"] == 7
    lines = doc["lines"]
    assert isinstance(lines, dict)
    assert {k: v["train"] + v["holdout"] for k, v in lines.items()} == {
        "toledo/line-1": 5,
        "toledo/line-2": 2,
    }


def test_unknown_line_and_camera_are_located_with_a_did_you_mean_and_nothing_is_written(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "tree"
    _images(root / "lnie-1" / "cam-1" / "ok", 3, 1)  # a typo in a line folder, 3 images
    _images(root / "line-1" / "cam-3" / "ok", 1, 2)  # a camera the line does not have
    _images(root / "line-1" / "cam-1" / "rust", 1, 3)  # not a class of the taxonomy
    _images(root / "line-1" / "cam-1" / "ok", 1, 4)
    args = ["import", str(root), "--levels", "line/camera/class", "--site", "toledo"]
    args += ["--annotator", "ana", "--taxonomy", "surface-defects@2"]
    assert lf(repo, *args) == 1
    err = capsys.readouterr().err
    assert err.count("unknown line") == 1  # once per folder, not once per image
    assert f"{root}/lnie-1: line: unknown line 'toledo/lnie-1'; did you mean 'line-1'?" in err
    assert (
        f"{root}/line-1/cam-3: camera: no camera 'cam-3' on toledo/line-1; did you mean "
        "'cam-2'? (cameras: cam-1, cam-2)" in err
    )
    assert f"{root}/line-1/cam-1/rust: class: unknown class 'rust' in surface-defects@2" in err
    assert "map it with --map rust=CLASS" in err
    assert "Traceback" not in err
    assert not (tmp_path / "state" / "frames").exists()


def test_jsonl_rows_are_checked_against_the_fleet_too(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "0.png").write_bytes(png(0))
    row = {"image": "0.png", "site": "toldeo", "line": "line-1", "camera": "cam-1",
           "class": "ok", "annotator": "ana", "taxonomy": "surface-defects@2"}  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert lf(repo, "import", str(path)) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:1: site: unknown site 'toldeo'; did you mean 'toledo'?" in err


def test_a_row_for_a_line_whose_fleet_file_does_not_load_says_so(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line file with a YAML error (or a Git LFS pointer) in --fleet-repo: the import said
    "unknown line 'toledo/line-1'; did you mean 'line-2'?" of a line the fleet declares."""
    line = repo / "fleet" / "sites" / "toledo" / "lines" / "line-1.yaml"
    line.write_bytes(line.read_bytes().replace(b"cameras:", b"cameras:\n\t- oops", 1))
    (tmp_path / "0.png").write_bytes(png(0))
    row = {"image": "0.png", "site": "toledo", "line": "line-1", "camera": "cam-1",
           "class": "ok", "annotator": "ana", "taxonomy": "surface-defects@2"}  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert lf(repo, "import", str(path)) == 1
    assert capsys.readouterr().err.strip() == (
        f"linefleet: error: {path}:1:1: line: line 'toledo/line-1': its file in the fleet "
        "repository does not load (`linefleet validate` says why)"
    )


def test_an_image_link_whose_target_is_gone_is_named_not_left_out(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A class folder copied with a link to an image that is not there any more: the import
    said 'imported 2' of 3 images and nothing of the third."""
    root = tmp_path / "tree"
    _images(root / "ok", 2, 1)
    (root / "ok" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    args = ["import", str(root), "--site", "toledo", "--line", "line-1", "--camera", "cam-1"]
    assert lf(repo, *args, "--annotator", "ana", "--taxonomy", "surface-defects@2") == 1
    assert capsys.readouterr().err.strip() == (
        f"linefleet: error: {root}/ok: image: {root}/ok/gone.png: cannot read (No such file or "
        "directory)"
    )
    assert not (repo.parent / "state").exists() or _dataset(repo, capsys)["frames"] == 0


def test_mvtec_ad_category_with_a_class_map(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = tmp_path / "mvtec" / "metal_nut"
    _images(cat / "train" / "good", 4, 1)
    _images(cat / "test" / "good", 1, 2)
    _images(cat / "test" / "scratch", 2, 3)
    _images(cat / "test" / "color", 2, 4)
    _images(cat / "ground_truth" / "scratch", 2, 5)  # masks: not labels
    args = ["import", str(cat), "--site", "toledo", "--line", "line-2", "--camera", "cam-1"]
    args += ["--annotator", "ana", "--taxonomy", "surface-defects@2"]
    assert lf(repo, *args) == 1
    err = capsys.readouterr().err
    assert f"{cat}/test/color: class: unknown class 'color' in surface-defects@2" in err
    assert "map it with --map color=CLASS" in err
    assert lf(repo, *args, "--map", "color=oil") == 0
    assert "imported 9 annotation(s), 9 new frame(s) (mvtec)" in capsys.readouterr().out
    assert lf(repo, "import", str(cat), "--annotator", "ana", "--taxonomy", "x@1") == 2
    assert "give --site, or a `site` level in --levels" in capsys.readouterr().err


def test_a_plant_tree_given_relative_with_camera_folder_names_and_a_hostile_header(
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "export"
    _images(root / "Good", 2, 1)  # `good` is `ok`, as in MVTec AD
    _images(root / "SCRATCH", 2, 2)  # case is not a different class
    _images(root / "oil stain", 1, 3)
    monkeypatch.chdir(tmp_path)
    args = ["import", "export", "--site", "toledo", "--line", "line-1", "--camera", "cam-1"]
    args += ["--annotator", "ana", "--taxonomy", "surface-defects@2"]
    assert lf(repo, *args) == 1
    err = capsys.readouterr().err
    assert "export/oil stain: class: unknown class 'oil stain'" in err
    assert "map it with --map 'oil stain=CLASS'" in err  # as the shell needs it
    assert "Good" not in err and "SCRATCH" not in err
    header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\xea`\x00\x00\xea`\x08\x00\x00\x00\x00"
    (root / "Good" / "huge.png").write_bytes(header + b"\x00" * 16)  # 60000 x 60000
    assert lf(repo, *args, "--map", "oil stain=oil") == 1
    err = capsys.readouterr().err
    assert "export/Good: image: export/Good/huge.png: its header declares 60,000 x 60,000" in err
    (root / "Good" / "huge.png").unlink()
    assert lf(repo, *args, "--map", "oil stain=oil") == 0
    assert "imported 5 annotation(s), 5 new frame(s) (folder)" in capsys.readouterr().out
    doc = _dataset(repo, capsys)
    assert doc["frames"] == 5


def test_a_jsonl_row_naming_a_pipe_is_refused_not_waited_on(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    os.mkfifo(tmp_path / "0.png")  # no writer: reading it would block the import for ever
    row = {"image": "0.png", "site": "toledo", "line": "line-1", "camera": "cam-1",
           "class": "ok", "annotator": "ana", "taxonomy": "surface-defects@2"}  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert lf(repo, "import", str(path)) == 1
    assert f"{path}:1:1: image: {tmp_path / '0.png'}: not a regular file" in capsys.readouterr().err
    assert not (repo.parent / "state").exists() or _dataset(repo, capsys)["frames"] == 0


def test_jsonl_lines_not_utf8_are_located_and_u2028_in_a_note_is_no_line_break(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line in Latin-1 refused the whole file as a usage error (exit 2) with a byte offset;
    a U+2028 inside a JSON string (valid JSON) split the row in two."""
    (tmp_path / "0.png").write_bytes(png(0))
    row = {"image": "0.png", "site": "toledo", "line": "line-1", "camera": "cam-1",
           "class": "ok", "annotator": "ana", "taxonomy": "surface-defects@2"}  # fmt: skip
    good = json.dumps(row | {"note": "left\u2028edge"}, ensure_ascii=False).encode()
    latin1 = json.dumps(row | {"annotator": "jos\u00e9"}, ensure_ascii=False).encode("latin-1")
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\r\n" + latin1 + b"\n")
    assert lf(repo, "import", str(path)) == 1
    err = capsys.readouterr().err
    col = latin1.index(b"\xe9") + 1
    assert f"{path}:2:1: not valid UTF-8 (byte 0xe9 at column {col}); save the file as UTF-8" in err
    assert f"{path}:1:" not in err  # the BOM, the CRLF and the U+2028 are fine
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\r\n")
    assert lf(repo, "import", str(path)) == 0


def test_a_jsonl_row_giving_a_field_twice_is_located_and_nothing_is_written(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another tool's row `{"class": "ok", ..., "class": "dent"}` was imported as dent
    without a word (json.loads keeps the last value)."""
    (tmp_path / "0.png").write_bytes(png(0))
    row = ('{"image": "0.png", "site": "toledo", "line": "line-1", "camera": "cam-1", '
           '"class": "ok", "annotator": "ana", "taxonomy": "surface-defects@2", "class": "dent"}')  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text(row + "\n")
    assert lf(repo, "import", str(path)) == 1
    assert capsys.readouterr().err.strip() == (
        f"linefleet: error: {path}:1:1: class: given twice in one object; keep the value that "
        "is meant"
    )
    assert not (repo.parent / "state").exists() or _dataset(repo, capsys)["frames"] == 0


def test_one_image_given_two_classes_by_one_annotator_is_located_and_nothing_is_written(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same picture in two class folders (or on two rows) of one export was imported as
    two labels of one annotator, and the dataset kept whichever came later (here, by folder
    name) without a word. The same row twice is taken once."""
    root = tmp_path / "tree"
    _images(root / "ok", 2, 1)
    _images(root / "scratch", 1, 1)  # scratch/000.png is ok/000.png
    args = ["import", str(root), "--site", "toledo", "--line", "line-1", "--camera", "cam-1"]
    args += ["--annotator", "ana", "--taxonomy", "surface-defects@2"]
    assert lf(repo, *args) == 1
    assert capsys.readouterr().err.strip() == (
        f"linefleet: error: {root}/scratch: class: {root}/scratch/000.png is the same image as "
        f"{root}/ok/000.png, which says 'ok' on toledo/line-1 cam-1; one annotator gives an "
        "image one class and place"
    )
    assert not (repo.parent / "state").exists() or _dataset(repo, capsys)["frames"] == 0

    row = {"image": "tree/ok/001.png", "site": "toledo", "line": "line-1", "camera": "cam-1",
           "class": "ok", "annotator": "ana", "taxonomy": "surface-defects@2"}  # fmt: skip
    path = tmp_path / "labels.jsonl"
    rows = [row, row, row | {"camera": "cam-2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert lf(repo, "import", str(path)) == 1
    assert capsys.readouterr().err.strip() == (
        f"linefleet: error: {path}:3:1: class: tree/ok/001.png is the same image as {path}:1, "
        "which says 'ok' on toledo/line-1 cam-1; one annotator gives an image one class and place"
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert lf(repo, "import", str(path)) == 0
    assert "imported 1 annotation(s), 1 new frame(s) (jsonl)" in capsys.readouterr().out


def test_an_image_over_the_file_size_limit_is_refused_by_name_before_it_is_read(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid PNG padded past MAX_FILE_BYTES (sparse) was read whole into memory first."""
    import os

    (tmp_path / "0.png").write_bytes(png(0))
    os.truncate(tmp_path / "0.png", MAX_FILE_BYTES + 1)
    row = {"image": "0.png", "site": "toledo", "line": "line-1", "camera": "cam-1",
           "class": "ok", "annotator": "ana", "taxonomy": "surface-defects@2"}  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert lf(repo, "import", str(path)) == 1
    assert (
        f"{path}:1:1: image: {tmp_path / '0.png'}: {MAX_FILE_BYTES + 1:,} bytes; an image file "
        f"is read only up to {MAX_FILE_BYTES:,} bytes"
    ) in capsys.readouterr().err
    assert not (repo.parent / "state").exists() or _dataset(repo, capsys)["frames"] == 0


def test_a_gif_named_png_and_a_file_name_with_escapes_are_refused_by_name_safely(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GIF is refused by its content whatever it is called (OpenCV decoded it with no size
    check: 54 bytes could declare gigabytes); a file name holding ESC sequences reached the
    terminal raw through the error message (`ESC[2J` clears the reader's screen); a name is
    data: its newline is escaped (`\\x0a`) too, so each refused file is one line of the error,
    while the message's own line breaks (one problem a line) stay."""
    ok = tmp_path / "tree" / "line-1" / "ok"
    _images(ok, 1, 1)
    (ok / "bomb.png").write_bytes(gif_declaring(12000, 12000))
    (ok / "\x1b[2Jclear.png").write_bytes(b"not an image")
    (ok / "two\nlines.png").write_bytes(b"not an image either")
    args = ["import", str(tmp_path / "tree"), "--levels", "line/class", "--site", "toledo"]
    args += ["--camera", "cam-1", "--annotator", "ana", "--taxonomy", "surface-defects@2"]
    assert lf(repo, *args) == 1
    err = capsys.readouterr().err
    assert f"{ok / 'bomb.png'}: not a PNG, JPEG, BMP, TIFF or WebP image" in err
    assert "\x1b" not in err and f"{ok}/\\x1b[2Jclear.png: not a PNG" in err
    assert f"{ok}/two\\x0alines.png: not a PNG" in err and len(err.strip().split("\n")) == 3
    assert "Traceback" not in err
    assert not (repo.parent / "state").exists() or _dataset(repo, capsys)["frames"] == 0


def test_a_jsonl_image_path_with_a_lone_surrogate_escape_is_located_not_a_crash(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`"image": "\\ud800.png"` reached `open()`, which cannot encode it: exit 3."""
    row = {"site": "toledo", "line": "line-1", "camera": "cam-1", "class": "ok",
           "annotator": "ana", "taxonomy": "surface-defects@2"}  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"image": "\ud800.png", **row}) + "\n")
    assert lf(repo, "import", str(path)) == 1
    assert f"{path}:1:1: image: a string holds a lone surrogate escape" in capsys.readouterr().err


def test_importing_the_same_annotations_again_is_a_no_op_that_says_so(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two annotators label the same 20 images; both folders imported twice. The second run
    added every annotation again: the dataset did not change (latest per annotator), but each
    annotator's label count doubled, and the agreement trend (which needs 40 shared labels to
    say anything) read 20 frames twice as 40. Now an annotation that says what its
    annotator's latest one of that image says is skipped and counted; a changed one is new."""
    ana, bob = tmp_path / "ana", tmp_path / "bob"
    _images(ana / "ok", 12, 1)
    _images(ana / "scratch", 8, 2)
    _images(bob / "ok", 10, 1)
    _images(bob / "scratch", 8, 2)
    (bob / "scratch" / "110.png").write_bytes((ana / "ok" / "010.png").read_bytes())
    (bob / "scratch" / "111.png").write_bytes((ana / "ok" / "011.png").read_bytes())
    common = ["--site", "toledo", "--line", "line-1", "--camera", "cam-1"]
    common += ["--taxonomy", "surface-defects@2"]

    def quality() -> dict[str, Any]:
        capsys.readouterr()
        assert lf(repo, "quality", "--format", "json") == 0
        doc: dict[str, Any] = json.loads(capsys.readouterr().out)
        return doc

    for who, root in (("ana", ana), ("bob", bob)):
        assert lf(repo, "import", str(root), "--annotator", who, *common) == 0
        assert "imported 20 annotation(s)" in capsys.readouterr().out
    before = quality()
    assert before["double_labelled"] == 20
    assert [(a["name"], a["labels"]) for a in before["annotators"]] == [("ana", 20), ("bob", 20)]
    said = []
    for who, root in (("ana", ana), ("bob", bob)):
        assert lf(repo, "import", str(root), "--annotator", who, *common) == 0
        said.append(capsys.readouterr().out)
    again = quality()
    assert [(a["name"], a["agreement_early"]) for a in again["annotators"]] == [
        ("ana", None),
        ("bob", None),
    ]  # 20 shared frames: too few to compare early and recent agreement
    assert again == before
    for out in said:
        assert "imported 0 annotation(s), 0 new frame(s) (folder); 20 already imported" in out

    (ana / "ok" / "011.png").rename(ana / "scratch" / "111.png")  # ana changed her mind
    assert lf(repo, "import", str(ana), "--annotator", "ana", *common) == 0
    out = capsys.readouterr().out
    assert "imported 1 annotation(s), 0 new frame(s) (folder); 19 already imported" in out
    after = quality()
    assert [(a["name"], a["labels"]) for a in after["annotators"]] == [("ana", 21), ("bob", 20)]
