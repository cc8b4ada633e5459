"""`linefleet trainer novelty` refuses what it cannot fit with a clear message and its exit code
(no traceback, nothing written to the fleet repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from linefleet.cli import main
from tests.support.minifleet import write_minifleet


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--line", "toledo/line-1", "--false-alarm-rate", "1.5"], 2, "a fraction in (0, 1)"),
        (["--line", "toledo/line-1", "--size", "60"], 2, "multiple of --patch 16 (>= 2) and of 32"),
        (["--line", "toledo/line-1", "--size", "48", "--patch", "8"], 2, "and of 32"),
        (
            ["--line", "nowhere/line-9"],
            2,
            "--line nowhere/line-9: not a line of",
        ),
        (["--line", "toledo/line-1", "--line", "toledo/line-2", "--model", "x"], 2, "one --line"),
        (
            ["--line", "toledo/line-1"],  # an empty label store: nothing to fit on
            1,
            "toledo/line-1 (ds-",
        ),
    ],
)
def test_refusals_name_the_problem_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], code: int, message: str
) -> None:
    repo = tmp_path / "repo"
    write_minifleet(repo)
    before = sorted(p.name for p in (repo / "fleet" / "models").iterdir())
    common = ["--state", str(tmp_path / "state"), "--fleet-repo", str(repo)]
    common += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    assert main(["trainer", "novelty", *extra, *common]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in (repo / "fleet" / "models").iterdir()) == before
    if code == 1:
        assert "0 ok frame(s) to fit on; a novelty model needs at least 10" in err
