"""`linefleet init DIR` as a user runs it: what it writes validates, and bad input is refused."""

from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from linefleet.cli import main
from linefleet_core.fleetschema import schema_documents

pytestmark = pytest.mark.acceptance
VERSION = version("linefleet")


def init(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["init", *args])
    out, err = capsys.readouterr()
    return code, out, err


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def tree(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    )


def test_init_writes_a_committed_fleet_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "acme-fleet"
    code, out, err = init(
        capsys, str(repo), "--site", "toledo", "--site-name", "Toledo Stamping: Paint",
        "--timezone", "America/New_York", "--approver", "@acme/toledo-quality",
        "--approver", "qa@acme.example", "--admin", "@acme/fleet-admins",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.startswith(f"created {repo}: 15 files, site toledo\n")
    assert tree(repo) == sorted(
        [
            ".github/CODEOWNERS",
            ".github/workflows/fleet-check.yml",
            ".github/workflows/fleet-publish.yml",
            ".gitignore",
            "README.md",
            "fleet/models/README.md",
            "fleet/policy.yaml",
            "fleet/sites/toledo/site.yaml",
            "taxonomies/surface-defects/v1.yaml",
            *(f"schema/{name}" for name in schema_documents()),
        ]
    )
    # One commit on main holding every file; nothing left over.
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(repo, "log", "--format=%s").splitlines() == ["Start the fleet: site toledo"]
    assert git(repo, "status", "--porcelain") == ""
    assert sorted(git(repo, "ls-files").splitlines()) == tree(repo)

    assert main(["validate", "--repo", str(repo)]) == 0
    assert capsys.readouterr().out == "valid: 0 error(s), 0 warning(s) in 3 document(s)\n"
    assert main(["codeowners", "--repo", str(repo), "--check"]) == 0
    assert main(["schema", "--out", str(repo / "schema"), "--check"]) == 0
    capsys.readouterr()

    site = yaml.safe_load((repo / "fleet/sites/toledo/site.yaml").read_text())
    assert site["name"] == "Toledo Stamping: Paint"
    assert site["timezone"] == "America/New_York"
    assert site["approvers"] == ["@acme/toledo-quality", "qa@acme.example"]
    codeowners = (repo / ".github/CODEOWNERS").read_text()
    assert "*                            @acme/fleet-admins\n" in codeowners
    assert "/fleet/sites/toledo/         @acme/toledo-quality qa@acme.example\n" in codeowners
    assert "signing.key" in (repo / ".gitignore").read_text().splitlines()


def test_the_workflows_pin_this_linefleet_once_each_and_never_build_from_the_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "fleet"
    assert init(capsys, str(repo), "--actions", "acme/linefleet-mirror")[0] == 0
    workflows = repo / ".github" / "workflows"
    check = yaml.safe_load((workflows / "fleet-check.yml").read_text())
    publish = yaml.safe_load((workflows / "fleet-publish.yml").read_text())
    # The check runs as the base branch defines it; the change is checked out as data.
    assert set(check[True]) == {"pull_request_target"}
    checkout, action = check["jobs"]["check"]["steps"]
    assert checkout["with"]["ref"] == "refs/pull/${{ github.event.pull_request.number }}/merge"
    assert checkout["with"]["persist-credentials"] is False
    assert action == {"uses": f"acme/linefleet-mirror/.github/actions/check@v{VERSION}"}
    _, action = publish["jobs"]["publish"]["steps"]
    assert action["uses"] == f"acme/linefleet-mirror/.github/actions/publish@v{VERSION}"
    assert action["with"] == {
        "broker": "${{ secrets.LINEFLEET_BROKER }}",
        "signing-key": "${{ secrets.LINEFLEET_SIGNING_KEY }}",
    }
    for name in ("fleet-check.yml", "fleet-publish.yml"):
        text = (workflows / name).read_text()
        uses = [line for line in text.splitlines() if f"@v{VERSION}" in line]
        assert len(uses) == 2, uses  # the `uses:` line, and the comment saying how to upgrade
        assert "pip install" not in text and "run:" not in text


def test_a_non_empty_folder_is_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "existing"
    repo.mkdir()
    (repo / "notes.txt").write_text("mine\n")
    code, _, err = init(capsys, str(repo))
    assert code == 2
    assert err == (
        f"linefleet: error: {repo}: not empty (use --force to write the new fleet into it)\n"
    )
    assert tree(repo) == ["notes.txt"]

    code, _, _ = init(capsys, str(repo), "--force")
    assert code == 0
    assert "notes.txt" in tree(repo)
    assert (repo / "notes.txt").read_text() == "mine\n"
    assert "notes.txt" not in git(repo, "ls-files").split()  # only our files are committed
    assert main(["validate", "--repo", str(repo)]) == 0


def test_bad_choices_are_located_at_their_flags_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "fleet"
    code, out, err = init(
        capsys, str(repo), "--site", "Plant_1", "--timezone", "Mars/Olympus",
        "--approver", "not an owner",
    )  # fmt: skip
    assert (code, out) == (2, "")  # usage: the flags are wrong
    assert err.splitlines() == [
        "linefleet: error: --approver: owners.fleet_admins[0]: 'not an owner' is not a "
        "CODEOWNERS owner (@user, @org/team or an e-mail)",
        "--site: id: String should match pattern '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'",
        "--timezone: timezone: unknown IANA timezone 'Mars/Olympus' (for example 'Europe/Berlin')",
        "--approver: approvers[0]: 'not an owner' is not a CODEOWNERS owner "
        "(@user, @org/team or an e-mail)",
    ]
    assert not repo.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_a_brought_taxonomy_replaces_the_starter_and_its_errors_point_at_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "paint.yaml"
    good.write_text(
        "apiVersion: linefleet.io/v1\nkind: Taxonomy\nname: paint\nversion: 1\nclasses:\n"
        "- id: ok\n  definition: fine\n  severity: none\n"
        "- id: run\n  definition: a sag in the paint\n  severity: minor\n"
    )
    repo = tmp_path / "fleet"
    assert init(capsys, str(repo), "--taxonomy", str(good))[0] == 0
    assert [p for p in tree(repo) if p.startswith("taxonomies/")] == ["taxonomies/paint/v1.yaml"]
    assert (repo / "taxonomies/paint/v1.yaml").read_bytes() == good.read_bytes()

    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("severity: minor", "severity: awful"))
    code, _, err = init(capsys, str(tmp_path / "other"), "--taxonomy", str(bad))
    assert code == 1
    assert err == (
        f"linefleet: error: {bad}:11:13: classes[1].severity: "
        "Input should be 'none', 'minor', 'major' or 'critical'\n"
    )
    assert not (tmp_path / "other").exists()

    v2 = tmp_path / "v2.yaml"
    v2.write_text(good.read_text().replace("version: 1", "version: 2"))
    code, _, err = init(capsys, str(tmp_path / "other"), "--taxonomy", str(v2))
    assert code == 1
    assert err == (
        f"linefleet: error: {v2}:4:10: version: paint@1 is missing: versions must be consecutive\n"
    )
    code, _, err = init(capsys, str(tmp_path / "other"), "--taxonomy", str(tmp_path / "none"))
    assert (code, err) == (
        2,
        f"linefleet: error: --taxonomy {tmp_path / 'none'}: No such file or directory\n",
    )


def test_version_names_the_installed_release(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"linefleet {VERSION}\n"


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--site", "Bad_Id", "--site: id: String should match pattern"),
        ("--timezone", "Mars/Olympus", "--timezone: timezone: unknown IANA timezone"),
        ("--approver", "nobody", "--approver: approvers[0]: 'nobody' is not a CODEOWNERS owner"),
        ("--admin", "x", "--admin: owners.fleet_admins[0]: 'x' is not a CODEOWNERS owner"),
        ("--actions", "bad", "--actions 'bad': expected OWNER/REPO"),
    ],
)
def test_a_bad_option_value_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, said: str
) -> None:
    """A value the fleet refuses, given on the command line, is a usage error (exit 2, as the
    README's exit codes say), not invalid input (1, which `--site Bad_Id` gave): the user's
    command is wrong, not a file. Nothing is written."""
    code, out, err = init(capsys, str(tmp_path / "fleet"), flag, value, "--approver", "@qa")
    assert (code, out) == (2, "")
    assert said in err
    assert not (tmp_path / "fleet").exists()
