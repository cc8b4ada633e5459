"""The features backend's operating point: chosen on training frames, baked into the ONNX."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from trainer.features import extract, feature_graph
from trainer.train import (
    TrainConfig,
    classifier,
    decide_scaled,
    export,
    feature_operating_point,
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


def test_the_chosen_point_meets_the_escape_target_on_the_validation_frames() -> None:
    x, y, groups = _overlapping(400, seed=1)
    config = TrainConfig(max_escape=0.05)
    point = feature_operating_point(x, y, PRESENT, groups, config)
    assert point.validation_escape is not None and point.validation_escape <= 0.05
    assert point.ok_scale < 1.0 and point.validation_frames == 80
    assert point.params()["ok_bias"] == pytest.approx(np.log(point.ok_scale), abs=1e-3)
    # the plain argmax of the same validation fit escapes more than the target allows
    loose = feature_operating_point(x, y, PRESENT, groups, TrainConfig(max_escape=1.0))
    assert loose.ok_scale == 1.0 and loose.validation_escape is not None
    assert loose.validation_escape > 0.05
    # no target, or too few frames for a validation split: plain argmax, nothing recorded
    assert feature_operating_point(x, y, PRESENT, groups, TrainConfig()).params() == {}
    few = feature_operating_point(x[:40], y[:40], PRESENT, groups[:40], config)
    assert few.ok_scale == 1.0 and few.params() == {}


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
