"""bench_backends' independent section: a fresh test draw per line, and the goal judged on it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from bench.othersource import write_tree

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))  # as the script runs
bench_backends: Any = importlib.import_module("bench_backends")


def _pngs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_the_test_draw_is_its_own_stream_of_the_same_lines(tmp_path: Path) -> None:
    keys = write_tree(tmp_path / "train", lines=3, frames_per_line=4, seed=5, size=32)
    again = write_tree(tmp_path / "again", lines=3, frames_per_line=4, seed=(5, 1), size=32)
    write_tree(tmp_path / "test", lines=3, frames_per_line=4, seed=(5, 1), size=32)
    assert keys == again == ["toledo/line-1", "toledo/line-2", "toledo/line-3"]
    train, test = _pngs(tmp_path / "train"), _pngs(tmp_path / "test")
    assert test == _pngs(tmp_path / "again")  # reproducible
    assert not set(train.values()) & set(test.values())  # no frame of the training draw


def _line(escaped: int, defects: int, accuracy: float) -> dict[str, Any]:
    rate = {"value": escaped / defects, "low": 0.0, "high": 1.0, "count": escaped, "of": defects}
    return {"frames": 2 * defects, "accuracy": accuracy, "escape": rate, "false_reject": rate,
            "recall": {}}  # fmt: skip


def test_the_goal_is_judged_on_the_test_draw_not_the_holdout() -> None:
    result: dict[str, Any] = {
        "train_seconds": 60.0, "train_cpu_seconds": 100.0, "train_frames": 960,
        "lines": {"toledo/line-1": _line(1, 40, 0.95)},  # holdout: 0.025, met
        "test": {"seed": [5, 1], "frames_per_line": 500,
                 "lines": {"toledo/line-1": _line(13, 250, 0.95)}},  # 0.052: not met
    }  # fmt: skip
    doc = bench_backends.report({"features-boosted": result}, None, None)
    assert doc["met"] is False
    assert "worst line on the fresh test draw: escape 0.052" in doc["markdown"]
    assert "on the fresh test draw (seed (5, 1)" in doc["markdown"]
    result["test"]["lines"]["toledo/line-1"] = _line(12, 250, 0.95)  # 0.048
    assert bench_backends.report({"features-boosted": result}, None, None)["met"] is True
    del result["test"]  # without a test draw, the holdout decides
    assert bench_backends.report({"features-boosted": result}, None, None)["met"] is True
