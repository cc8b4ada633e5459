"""`linefleet fleet generate` as a user runs it: the repository it writes validates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git
import pytest

from linefleet.cli import main


def generate(out: Path, *extra: str) -> int:
    return main(["fleet", "generate", "--out", str(out), *extra])


def validate_json(repo: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["validate", "--repo", str(repo), "--format", "json"]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize(
    "shape",
    [
        ("--sites", "1", "--lines-per-site", "1", "--cameras-per-line", "1"),
        ("--sites", "3", "--lines-per-site", "6", "--cameras-per-line", "4", "--seed", "5"),
        (
            "--sites",
            "9",
            "--lines-per-site",
            "5",
            "--cameras-per-line",
            "2",
            "--devices-per-site",
            "5",
        ),
    ],
)
def test_generated_repositories_validate_with_no_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: tuple[str, ...]
) -> None:
    assert generate(tmp_path / "repo", *shape) == 0
    assert "wrote" in capsys.readouterr().out
    result = validate_json(tmp_path / "repo", capsys)
    assert result["valid"] is True
    assert result["findings"] == []


def test_the_summary_counts_what_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate(tmp_path / "r", "--sites", "2", "--lines-per-site", "5", "--cameras-per-line", "3")
    out = capsys.readouterr().out
    assert "2 site(s), 10 line(s), 30 camera(s), 4 device(s)" in out
    assert len(list((tmp_path / "r").glob("fleet/sites/*/lines/*.yaml"))) == 10
    assert (tmp_path / "r" / "schema" / "line.schema.json").is_file()
    assert len(list((tmp_path / "r" / "fleet" / "artifacts").glob("*.onnx"))) == 4


def test_same_seed_gives_identical_repositories(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate(tmp_path / name, "--sites", "2", "--seed", "42")

    def tree(root: Path) -> dict[Path, bytes]:
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert len(a) == 27
    assert a == b


def test_a_non_empty_directory_is_refused_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "README.md").write_text("keep me")
    assert generate(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path}: not empty (use --force" in err
    assert "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    assert generate(tmp_path, "--force", "--sites", "1") == 0
    assert (tmp_path / "README.md").read_text() == "keep me"
    assert [p.name for p in (tmp_path / "fleet" / "sites").iterdir()] == ["toledo"]


def test_git_initialises_and_commits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate(tmp_path / "repo", "--git", "--sites", "1") == 0
    repo = git.Repo(tmp_path / "repo")
    assert not repo.is_dirty(untracked_files=True)
    assert str(repo.head.commit.message).startswith("Generate fleet: 1 sites x 4 lines x 3 cameras")
    assert "fleet/policy.yaml" in repo.git.ls_files().splitlines()
    # commands run in the repository keep their state out of it, as after `linefleet init`
    (tmp_path / "repo" / ".linefleet" / "trainer").mkdir(parents=True)
    (tmp_path / "repo" / ".linefleet" / "trainer" / "mlflow.db").write_bytes(b"x")
    (tmp_path / "repo" / "signing.key").write_bytes(b"secret")
    assert not repo.is_dirty(untracked_files=True)
    assert ".gitignore" in repo.git.ls_files().splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sites", "0"), "--sites: 0 must be at least 1"),
        (("--cameras-per-line", "many"), "'many' is not a whole number"),
        (("--lines-per-site", "2", "--devices-per-site", "3"), "devices-per-site must be between"),
    ],
)
def test_bad_shapes_are_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "linefleet",
            "fleet",
            "generate",
            "--out",
            str(tmp_path / "r"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_an_unwritable_place_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert generate(blocker / "repo") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"linefleet: error: --out {blocker / 'repo'}: ")
    assert blocker.read_text() == "x"


def test_every_generated_file_passes_its_exported_schema(tmp_path: Path) -> None:
    import jsonschema

    from linefleet_core import yamlsafe

    repo = tmp_path / "repo"
    assert generate(repo, "--sites", "4", "--lines-per-site", "5", "--seed", "3") == 0
    validators: dict[str, jsonschema.Draft202012Validator] = {}
    files = sorted(p for top in ("fleet", "taxonomies") for p in (repo / top).rglob("*.yaml"))
    for path in files:
        modeline, _ = path.read_text(encoding="utf-8").split("\n", 1)
        schema = (path.parent / modeline.split("$schema=", 1)[1]).resolve()
        if schema.name not in validators:
            validators[schema.name] = jsonschema.Draft202012Validator(
                json.loads(schema.read_text())
            )
        data = yamlsafe.load(path.name, path.read_bytes()).data
        validators[schema.name].validate(data)
    assert len(validators) == 6
    assert len(files) == 3 + 1 + 1 + 4 * (1 + 5 + 2)
