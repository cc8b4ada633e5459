"""The stage runner: stop at the first failure naming the stage, skip what is not built."""

from __future__ import annotations

import io
import json
from pathlib import Path

from linefleet.demo.console import Console
from linefleet.demo.context import MARKER, Demo, Options, Skip, StageFailed
from linefleet.demo.procs import Children
from linefleet.demo.runner import Stage, run_demo
from linefleet.demo.steps import Story


def _make_state(demo: Demo, story: Story) -> None:
    demo.root.mkdir(parents=True, exist_ok=True)
    (demo.root / MARKER).write_text("")


def _skip(demo: Demo, story: Story) -> None:
    raise Skip("the HTML report (`linefleet report`)", 6)


def _fail(demo: Demo, story: Story) -> None:
    raise StageFailed("`linefleet publish` exited with 4", "broker unreachable at 127.0.0.1:1")


def _never(demo: Demo, story: Story) -> None:
    raise AssertionError("a stage after a failure must not run")


def _run(tmp_path: Path, *stages: Stage) -> tuple[int, str]:
    out = io.StringIO()
    code = run_demo(
        Options(tmp_path / "state"),
        Console(out, color=False),
        stages=stages,
        children=Children(),
    )
    return code, out.getvalue()


def test_skipped_stages_are_said_plainly_and_listed_at_the_end(tmp_path: Path) -> None:
    code, out = _run(
        tmp_path,
        Stage("Start", "a clean folder", _make_state),
        Stage("Report", "an HTML page", _skip),
    )
    assert code == 0
    assert "[1/2] Start\n      a clean folder" in out
    assert "skipped: the HTML report (`linefleet report`) is not built yet (issue 6)" in out
    summary = out.split("Done.")[1]
    assert "Report: the HTML report (`linefleet report`) is not built yet (issue 6)" in summary
    record = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert record["stages"] == {
        "Start": "ok",
        "Report": "skipped: the HTML report (`linefleet report`) is not built yet (issue 6)",
    }


def test_each_stage_says_how_long_it_took(tmp_path: Path) -> None:
    code, out = _run(
        tmp_path,
        Stage("Start", "a clean folder", _make_state),
        Stage("Report", "an HTML page", _skip),
    )
    assert code == 0
    first, second = out.split("[2/2] Report")
    assert "\n  stage 1 took " in first and "stage 2 took" not in first
    assert "\n  stage 2 took " in second.split("Done.")[0]
    record = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert set(record["stage_seconds"]) == {"Start", "Report"}


def test_a_failing_step_stops_the_demo_naming_the_stage_and_the_output(tmp_path: Path) -> None:
    code, out = _run(
        tmp_path,
        Stage("Start", "a clean folder", _make_state),
        Stage("Publish", "to the broker", _fail),
        Stage("Later", "never", _never),
    )
    assert code == 1
    assert "demo failed: stage 2 (Publish): `linefleet publish` exited with 4" in out
    assert "    broker unreachable at 127.0.0.1:1" in out
    assert "[3/3]" not in out
    record = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert record["stages"]["Publish"].startswith("failed: ")


def test_an_unexpected_error_is_reported_as_the_stage_failing(tmp_path: Path) -> None:
    def broken(demo: Demo, story: Story) -> None:
        raise KeyError("content_hash")

    code, out = _run(tmp_path, Stage("Status", "the table", broken))
    assert code == 1
    assert "demo failed: stage 1 (Status): KeyError: 'content_hash'" in out
    assert not (tmp_path / "state").exists()  # nothing written outside a demo state dir


def test_the_outcome_reads_as_sentences_from_the_record() -> None:
    from linefleet.demo.runner import _outcome

    record = {
        "merged_pulls": [1, 2],
        "overrides": 12,
        "qa_confirmed": 12,
        "walked": {"line": "toledo/stamping-3", "model": "surface-classifier@6"},
        "edge_local_rollback": {"line": "toledo/paint-1", "model": "surface-classifier@7"},
        "git_revert": "0123456789abcdef",
        "status_counts": {"Synced": 2, "Degraded": 1, "Stale": 0},
    }
    assert _outcome(record) == [
        "2 promotion pull request(s) merged (#1, #2)",
        "12 inspector correction(s), 12 QA-confirmed, learned by the retrained model",
        "toledo/stamping-3 runs surface-classifier@6 in production",
        "regression surface-classifier@7 on toledo/paint-1: dropped by the device on its own, "
        "then reverted in git (0123456789ab)",
        "fleet: 2 Synced, 1 Degraded",
    ]
    assert _outcome({}) == []
