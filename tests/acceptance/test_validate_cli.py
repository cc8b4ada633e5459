"""`linefleet validate` as a user runs it: exit codes, located messages, JSON, hostile input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from linefleet.cli import main
from tests.hostile.yaml_corpus import CASES, Case
from tests.unit.core.fleetdocs import MemorySource, artifact_bytes

LINE = "fleet/sites/toledo/lines/line-3.yaml"


def write_fleet(root: Path, src: MemorySource | None = None) -> Path:
    return (src or MemorySource()).write(root)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_valid_fleet_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--repo", str(write_fleet(tmp_path)))
    assert code == 0
    assert out.strip() == "valid: 0 error(s), 0 warning(s) in 8 document(s)"


def test_an_invalid_fleet_exits_1_with_every_error_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = MemorySource()
    src.edit(LINE)["rollout"]["serving"] = "surface-classifier@9"
    src.edit("fleet/sites/toledo/site.yaml")["timezone"] = "Europe/Toledo"
    code, out, _ = run(capsys, "--repo", str(write_fleet(tmp_path, src)))
    assert code == 1
    assert out.splitlines() == [
        f"{LINE}:33:12: rollout.serving: unknown model 'surface-classifier@9' (not in the model catalogue)",
        "fleet/sites/toledo/site.yaml:5:11: timezone: unknown IANA timezone 'Europe/Toledo' "
        "(for example 'Europe/Berlin')",
        "invalid: 2 error(s), 0 warning(s) in 7 document(s)",
    ]


def test_json_output_lists_findings_with_the_same_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = MemorySource()
    src.edit(LINE)["cameras"][0]["fsp"] = 3
    code, out, _ = run(capsys, "--repo", str(write_fleet(tmp_path, src)), "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["format_version"] == 1
    assert doc["valid"] is False
    assert doc["findings"] == [
        {
            "path": LINE,
            "line": 20,
            "col": 3,
            "field": "cameras[0].fsp",
            "message": "unknown field 'fsp' (did you mean 'fps'?)",
            "severity": "error",
            "code": "unknown",
        }
    ]


def test_warnings_alone_keep_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = MemorySource()
    src.edit("fleet/sites/toledo/devices/tol-edge-01.yaml")["serves"].pop()
    code, out, _ = run(capsys, "--repo", str(write_fleet(tmp_path, src)))
    assert code == 0
    assert "warning: cameras: no edge device serves camera(s) cam-1" in out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_yaml_is_refused_with_a_located_reason(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_fleet(tmp_path)
    (root / "fleet/sites/toledo/hostile.yaml").write_bytes(case.raw)
    code, out, err = run(capsys, "--repo", str(root))
    assert code == 1
    (line,) = [row for row in out.splitlines() if row.startswith("fleet/sites/toledo/hostile.yaml")]
    assert case.expect in line
    assert err == ""


def test_a_key_with_escapes_cannot_forge_a_finding_or_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key holding ESC[2J and a newline printed them raw: the CI log showed a
    cleared screen and a forged `fleet/x.yaml:1:1: ...` line."""
    root = write_fleet(tmp_path)
    line = root / "fleet/sites/toledo/lines/line-3.yaml"
    hostile = b'"x\\e[2J\\nfleet/x.yaml:1:1: all good": 1\n'
    line.write_bytes(line.read_bytes() + hostile)
    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    assert "\x1b" not in out
    assert [row for row in out.splitlines() if row.startswith("fleet/x.yaml")] == []
    assert "x\\x1b[2J\\x0afleet/x.yaml:1:1: all good: unknown field" in out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--repo", str(tmp_path / "nowhere"))
    assert code == 2
    assert "no such directory" in err
    (tmp_path / "fleet.yaml").write_text("sites: []\n")
    code, _, err = run(capsys, "--repo", str(tmp_path / "fleet.yaml"))
    assert code == 2
    assert f"--repo {tmp_path / 'fleet.yaml'}: a file, not a directory" in err
    with pytest.raises(SystemExit) as info:
        main(["validate", "--format", "xml"])
    assert info.value.code == 2


def test_the_installed_command_never_shows_a_traceback(tmp_path: Path) -> None:
    root = write_fleet(tmp_path)
    for case in CASES:
        (root / f"fleet/{case.name}.yaml").write_bytes(case.raw)
    proc = subprocess.run(
        [sys.executable, "-m", "linefleet", "validate", "--repo", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    reported = {row.split(":")[0] for row in proc.stdout.splitlines() if row.startswith("fleet/")}
    assert reported == {f"fleet/{case.name}.yaml" for case in CASES}


def test_links_fifos_and_devices_are_refused_alike_from_the_working_tree_and_git(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: a link to an endless device ran out of memory, a FIFO hung validate, and a
    link to a valid file outside the repo passed validate while publish read the link text."""
    import os

    from linefleet_forge.gitrepo import GitObjects
    from reconciler.review.revisions import read_revision

    root = write_fleet(tmp_path / "repo")
    lines = root / "fleet" / "sites" / "toledo" / "lines"
    outside = tmp_path / "outside.yaml"
    outside.write_bytes((lines / "line-3.yaml").read_bytes().replace(b"line-3", b"line-9"))
    (lines / "zero.yaml").symlink_to("/dev/zero")
    (lines / "line-9.yaml").symlink_to(outside)
    (root / "fleet" / "linked").symlink_to(lines)
    os.mkfifo(lines / "pipe.yaml")

    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    refused = {ln.split(": ", 1)[0]: ln.split(": ", 1)[1] for ln in out.splitlines()[:-1]}
    assert refused == {
        "fleet/linked": refused["fleet/linked"],
        "fleet/sites/toledo/lines/line-9.yaml": refused["fleet/linked"],
        "fleet/sites/toledo/lines/pipe.yaml": "a FIFO (named pipe); fleet files must be regular files",
        "fleet/sites/toledo/lines/zero.yaml": refused["fleet/linked"],
    }
    assert refused["fleet/linked"].startswith("a symbolic link; fleet files must be regular")

    (lines / "pipe.yaml").unlink()  # git cannot store a FIFO
    _commit_all(root)
    _, _, from_git = read_revision(GitObjects.open(root), "HEAD", "")
    assert {f.path: f.message for f in from_git if f.code == "file_type"} == {
        k: v for k, v in refused.items() if not k.endswith("pipe.yaml")
    }


def test_a_file_name_that_is_not_utf8_is_refused_alike_and_written_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pull request adding `li\\xffne.yaml` (a name from a Latin-1 tool): the byte reached
    every output as a lone surrogate, and `plan --out` (the pull-request check) stopped with
    exit 3 writing it. Now the working tree and git refuse the file alike, the byte written
    `\\xff`, and the plan is written (exit 1: the head is invalid)."""
    import os
    import shutil

    from linefleet_forge.gitrepo import GitObjects
    from reconciler.review.revisions import read_revision

    root = write_fleet(tmp_path / "repo")
    _commit_all(root)
    lines = root / "fleet" / "sites" / "toledo" / "lines"
    shutil.copy(lines / "line-3.yaml", os.fsdecode(os.fsencode(lines) + b"/li\xffne.yaml"))
    shown = "fleet/sites/toledo/lines/li\\xffne.yaml"
    refusal = (
        f"{shown}: a name that is not UTF-8 (each such byte written \\xNN here); fleet files "
        "are named after what they declare (ids: a-z, 0-9 and -)"
    )

    code, out, _ = run(capsys, "--repo", str(root))
    assert (code, out.splitlines()[0]) == (1, refusal)
    code, out, _ = run(capsys, "--repo", str(root), "--format", "json")
    assert [f["path"] for f in json.loads(out)["findings"]] == [shown]

    _commit_all(root)
    _, _, from_git = read_revision(GitObjects.open(root), "HEAD", "")
    assert [f.render() for f in from_git] == [refusal]
    plan = tmp_path / "plan.md"
    code = main(["plan", "--repo", str(root), "--base", "HEAD~1", "--format", "markdown",
                 "--out", str(plan)])  # fmt: skip
    assert code == 1
    assert shown in plan.read_text(encoding="utf-8")


def test_a_refused_file_is_one_error_not_also_unknown_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line file replaced by a link (or a FIFO) is refused; the devices serving that line
    are not reported as well with "unknown line", as for a file with a YAML error."""
    import os

    root = write_fleet(tmp_path / "repo")
    line = root / "fleet" / "sites" / "toledo" / "lines" / "line-3.yaml"
    outside = tmp_path / "line-3.yaml"
    outside.write_bytes(line.read_bytes())
    line.unlink()
    line.symlink_to(outside)
    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    assert out.splitlines()[:-1] == [
        "fleet/sites/toledo/lines/line-3.yaml: a symbolic link; fleet files must be regular "
        "files (git stores a link as its target's name, so the check and the publisher would "
        "read different fleets)"
    ]
    line.unlink()
    os.mkfifo(line)
    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    assert [row.split(": ")[0] for row in out.splitlines()[:-1]] == [
        "fleet/sites/toledo/lines/line-3.yaml"
    ]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda src: src.edit("fleet/sites/toledo/devices/tol-edge-01.yaml").update(
                kind=["EdgeDevice"]
            ),
            "kind: unknown kind ['EdgeDevice']",
        ),
        (
            lambda src: src.edit("fleet/sites/toledo/site.yaml").update(
                freeze_periods=[
                    {"start": "2026-12-20T00:00+01:00", "end": "2027-01-04", "reason": "x"}
                ]
            ),
            "freeze_periods[0]: start and end must both carry a UTC offset or both be the site",
        ),
        (
            lambda src: src.edit("fleet/models/surface-classifier.yaml")["versions"][1][
                "artifact"
            ].update(url="../../../../etc/passwd"),
            "versions[1].artifact.url: artifact url '../../../../etc/passwd' leaves the repository",
        ),
        (
            lambda src: src.edit("fleet/models/surface-classifier.yaml")["versions"][1][
                "artifact"
            ].update(url="artifacts/v9.onnx"),
            "versions[1].artifact.url: artifacts/v9.onnx: no such file in the repository",
        ),
        (
            lambda src: src.edit("fleet/models/surface-classifier.yaml")["versions"][1][
                "artifact"
            ].update(sha256="f" * 64),
            "versions[1].artifact.sha256: artifacts/v2.onnx has sha256",
        ),
        (
            lambda src: src.edit("fleet/models/surface-classifier.yaml")["versions"][1][
                "artifact"
            ].update(size=10**6),
            f"versions[1].artifact.size: artifacts/v2.onnx is {len(artifact_bytes(2)):,} bytes;"
            " the catalogue says 1,000,000",
        ),
    ],
    ids=["kind-list", "mixed-timezones", "artifact-escape", "artifact-missing", "sha", "size"],
)
def test_what_crashed_or_passed_the_check_is_now_refused_with_a_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, expected: str
) -> None:
    src = MemorySource()
    edit(src)
    code, out, err = run(capsys, "--repo", str(write_fleet(tmp_path, src)))
    assert code == 1 and not err
    assert any(expected in ln and ln.split(":")[1].isdigit() for ln in out.splitlines()), out


REPO = Path(__file__).resolve().parents[2]


def example_fleet(root: Path) -> Path:
    """A copy of the example fleet committed in this repository (its artifacts included:
    `validate` checks they exist with the declared size and sha256)."""
    for top in ("fleet", "taxonomies"):
        for path in (REPO / top).rglob("*"):
            if not path.is_file():
                continue
            target = root / path.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return root


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_an_approver_without_the_at_sign_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = example_fleet(tmp_path)
    edit_text(root / "fleet/sites/toledo/site.yaml", "- '@mkowalski'", "- mkowalski")
    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    assert out.splitlines() == [
        "fleet/sites/toledo/site.yaml:9:3: approvers[1]: 'mkowalski' is not a CODEOWNERS owner "
        "(@user, @org/team or an e-mail); did you mean '@mkowalski'?",
        "invalid: 1 error(s), 0 warning(s) in 27 document(s)",
    ]


def test_a_file_named_after_another_object_is_a_located_error_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = example_fleet(tmp_path)
    edit_text(root / "fleet/sites/toledo/lines/paint-2.yaml", "id: paint-2", "id: paint-9")
    edit_text(root / "fleet/sites/dresden/lines/body-1.yaml", "site: dresden", "site: pune")
    edit_text(
        root / "fleet/sites/pune/devices/pune-press-edge-1.yaml",
        "id: pune-press-edge-1",
        "id: pune-press-edge-2",
    )
    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    # The device serving toledo/paint-2 and the evidence for it are consequences: not repeated.
    assert out.splitlines() == [
        "fleet/sites/dresden/lines/body-1.yaml:5:7: site: site 'pune', but the file is in "
        "fleet/sites/dresden/ (reviewed by that site's approvers); move it to "
        "fleet/sites/pune/ or set site to 'dresden'",
        "fleet/sites/pune/devices/pune-press-edge-1.yaml:4:5: id: 'pune-press-edge-2' does not "
        "match the file name pune-press-edge-1.yaml; rename the file to pune-press-edge-2.yaml "
        "or set id to 'pune-press-edge-1' (rollback pull requests, CODEOWNERS and the report "
        "find an object by its file name)",
        "fleet/sites/toledo/lines/paint-2.yaml:4:5: id: 'paint-9' does not match the file name "
        "paint-2.yaml; rename the file to paint-9.yaml or set id to 'paint-2' (rollback pull "
        "requests, CODEOWNERS and the report find an object by its file name)",
        "invalid: 3 error(s), 0 warning(s) in 25 document(s)",
    ]


@pytest.mark.parametrize(
    ("rel", "old", "new"),
    [
        ("fleet/sites/toledo/site.yaml", "name: Toledo Stamping & Paint", "name: [Toledo"),
        ("fleet/sites/toledo/site.yaml", "apiVersion: linefleet.io/v1", "apiVersion: v2"),
        ("fleet/sites/toledo/site.yaml", "timezone: America/New_York", "timezone: [1, 2]"),
        ("fleet/sites/toledo/lines/paint-1.yaml", "kind: Line", "kind: Line\n  x: 1"),
        ("fleet/models/surface-classifier.yaml", "kind: Model", "kind: Model\n- x"),
        ("taxonomies/surface-defects/v2.yaml", "kind: Taxonomy", "kind: [Taxonomy"),
    ],
    ids=["site yaml", "site api version", "site schema", "line yaml", "model yaml", "taxonomy"],
)
def test_one_broken_file_is_one_error_not_one_per_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rel: str, old: str, new: str
) -> None:
    root = example_fleet(tmp_path)
    edit_text(root / rel, old, new)
    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    *findings, verdict = out.splitlines()
    assert [f.partition(":")[0] for f in findings] == [rel], out
    assert verdict.startswith("invalid: 1 error(s), 0 warning(s)")


def test_a_folder_named_like_a_yaml_file_is_an_error_from_the_working_tree_and_git(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder `line-9.yaml` (where a line file was meant to be) was skipped silently."""

    from linefleet_forge.gitrepo import GitObjects
    from reconciler.review.revisions import read_revision

    root = write_fleet(tmp_path / "repo")
    folder = root / "fleet" / "sites" / "toledo" / "lines" / "line-9.yaml"
    folder.mkdir()
    (folder / "notes.txt").write_text("the line file was meant to go here\n")
    code, out, _ = run(capsys, "--repo", str(root))
    assert code == 1
    message = (
        "a directory named like a YAML file; fleet files must be regular files (its contents "
        "are not read)"
    )
    assert out.splitlines()[:-1] == [f"fleet/sites/toledo/lines/line-9.yaml: {message}"]
    _commit_all(root)
    _, _, from_git = read_revision(GitObjects.open(root), "HEAD", "")
    assert {f.path: f.message for f in from_git if f.code == "file_type"} == {
        "fleet/sites/toledo/lines/line-9.yaml": message
    }


def _commit_all(root: Path) -> None:
    """`git init` (if need be), add and commit everything under `root`."""
    for args in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "x"],
        check=True,
    )
