"""The features backend's operating point: chosen on training frames, baked into the ONNX."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trainer.active import artifact_operating_point, unscale
from trainer.cnn import operating_bias
from trainer.features import extract, feature_graph
from trainer.train import (
    TrainConfig,
    classifier,
    cross_folds,
    decide_scaled,
    export,
    feature_operating_point,
    out_of_fold,
    predict_with,
    session_for,
)

PRESENT = ("ok", "scratch")


def _overlapping(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two classes whose features overlap, so plain argmax lets some defects pass as ok."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * (n // 2) + [1] * (n // 2))
    x = rng.standard_normal((n, 4)) + np.where(y == 1, 1.0, 0.0)[:, None] * [1.2, 0.8, 0, 0]
    return x.astype(np.float32), y, ["toledo/line-1", "toledo/line-2"] * (n // 2)


def test_the_chosen_point_meets_the_escape_target_out_of_fold() -> None:
    x, y, groups = _overlapping(400, seed=1)
    config = TrainConfig(max_escape=0.05)
    point = feature_operating_point(x, y, PRESENT, groups, config)
    assert point.validation_escape is not None and point.validation_escape <= 0.05
    # every training frame was scored out of fold, and each line meets the target on its own
    assert point.ok_scale < 1.0 and point.validation_frames == 400 and point.folds == 5
    assert set(point.line_escape) == set(point.line_estimate) == {"toledo/line-1", "toledo/line-2"}
    assert max(point.line_estimate.values()) <= 0.05
    # the features backend holds each line on its own rate (no shrinkage toward the pool)
    assert point.line_estimate == point.line_escape
    assert point.params()["ok_bias"] == pytest.approx(np.log(point.ok_scale), abs=1e-3)
    assert point.params()["validation_escape_worst_line_estimate"] <= 0.05
    assert point.params()["validation_escape_worst_line"] == max(point.line_escape.values())
    # the plain argmax of the same out-of-fold scores escapes more than the target allows
    loose = feature_operating_point(x, y, PRESENT, groups, TrainConfig(max_escape=1.0))
    assert loose.ok_scale == 1.0 and loose.validation_escape is not None
    assert loose.validation_escape > 0.05
    # no target, or too few defect frames to choose on: plain argmax, nothing recorded
    assert feature_operating_point(x, y, PRESENT, groups, TrainConfig()).params() == {}
    few = feature_operating_point(x[:30], y[:30], PRESENT, groups[:30], config)
    assert few.ok_scale == 1.0 and few.params() == {}


def test_a_harder_line_binds_the_point_even_when_the_pooled_rate_is_met() -> None:
    """Line 1's defects overlap its good parts; line 2's are easy. Pooled, line 2's clean
    calls would let line 1 escape far above the target: the point must hold line 1 too."""
    rng = np.random.default_rng(3)
    n = 300
    y = np.array([0, 1] * n)
    lines = ["toledo/line-1"] * n + ["toledo/line-2"] * n
    y = np.concatenate([y[:n], y[n:]])
    shift = np.where(np.arange(2 * n) < n, 0.9, 4.0)  # line 1: hard, line 2: easy
    x = rng.standard_normal((2 * n, 3)) + (y * shift)[:, None] * [1.0, 0.5, 0.0]
    x = np.column_stack([x, np.arange(2 * n) >= n]).astype(np.float32)  # which line
    point = feature_operating_point(x, y, PRESENT, lines, TrainConfig(max_escape=0.05))
    assert point.line_estimate["toledo/line-1"] <= 0.05
    assert point.line_escape["toledo/line-2"] <= point.line_escape["toledo/line-1"]
    # the pooled rule alone stops earlier (a bias nearer 0) and line 1 escapes more
    fold = cross_folds(y, lines, 5, 0)
    proba = out_of_fold(x, y, 2, fold, TrainConfig())
    log_p = np.log(np.clip(proba, 1e-12, None))
    pooled = operating_bias(log_p, y, 0, 0.05)
    assert pooled > point.ok_bias
    hard = np.arange(2 * n) < n
    margin = log_p[hard & (y == 1), 0] - log_p[hard & (y == 1), 1]
    assert float(np.mean(margin + pooled >= 0)) > 0.05


def test_folds_hold_every_line_and_class_evenly() -> None:
    y = np.array([0] * 53 + [1] * 27 + [0] * 11 + [1] * 9)
    groups = ["a"] * 80 + ["b"] * 20
    fold = cross_folds(y, groups, 5, seed=4)
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3, 4]
    for line in ("a", "b"):
        for cls in (0, 1):
            members = fold[(np.array(groups) == line) & (y == cls)]
            counts = np.bincount(members, minlength=5)
            assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(fold, cross_folds(y, groups, 5, seed=4))  # deterministic


def test_the_exported_scores_decide_what_the_scaled_pipeline_decides() -> None:
    rng = np.random.default_rng(2)
    images = rng.random((60, 3, 64, 64), dtype=np.float32)
    images[30:, :, 20:40, 10:50] *= rng.uniform(0.6, 1.0, (30, 1, 1, 1)).astype(np.float32)
    graph = feature_graph(64)
    f = extract(graph, images)
    y = np.array([0] * 30 + [1] * 30)
    pipeline = classifier(TrainConfig()).fit(f, y)
    classes = ("ok", "dust", "scratch")
    expected = pipeline.predict_proba(f)
    ratio = expected[:, 0] / expected[:, 1]
    scale = float(np.median(ratio[ratio > 1]) ** -1)  # flips about half of the ok decisions
    data = export(graph, pipeline, list(PRESENT), classes, 64, ok_scale=scale)
    assert [o.name for o in onnx.load_from_string(data).graph.output] == ["probabilities"]
    probs = predict_with(session_for(data), images)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs[:, 1] == 0).all()
    sklearn_side = np.array(
        [classes.index(PRESENT[i]) for i in decide_scaled(expected, PRESENT, scale)]
    )
    np.testing.assert_array_equal(probs.argmax(axis=1), sklearn_side)
    plain = np.array([classes.index(PRESENT[i]) for i in expected.argmax(axis=1)])
    assert (sklearn_side != plain).sum() >= 3  # the point changed decisions, and the graph follows
    np.testing.assert_allclose(
        probs[:, 0], expected[:, 0] * scale / (expected[:, 0] * scale + expected[:, 1]), atol=1e-5
    )
    # the label queue reads the point back from the artifact and divides it out
    ok, found = artifact_operating_point(data)
    assert ok == 0 and found == pytest.approx(scale, rel=1e-6)
    own = unscale(probs, ok, found)
    np.testing.assert_allclose(own[:, [0, 2]], expected, atol=1e-4)
    assert artifact_operating_point(export(graph, pipeline, list(PRESENT), classes, 64)) == (
        None, 1.0,
    )  # fmt: skip


def test_training_says_when_the_square_input_shrinks_or_stretches_the_frames() -> None:
    from trainer.train import input_note

    assert input_note(128, 128, 128) == "" and input_note(640, 480, 128) == ""
    strip = input_note(1280, 400, 128)
    assert "aspect 3.2:1 stretched to 1:1" in strip and "shrunk" not in strip
    big = input_note(2592, 1944, 128)
    assert "shrunk 15.2x" in big and "--roi and --tiles" in big and "aspect" not in big
    assert input_note(0, 0, 128) == ""
