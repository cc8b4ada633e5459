"""The feature graph computes what it says, and the exported artifact equals the pipeline."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from trainer.features import (
    FEATURE_COUNT,
    FEATURE_LIMIT,
    GRID,
    extract,
    feature_graph,
    to_tensor,
)
from trainer.train import PROBABILITIES, export, predict_with, session_for


def _images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, 64, 64), dtype=np.float32)


def test_graph_is_valid_and_grid_means_match_numpy() -> None:
    model = feature_graph(64)
    onnx.checker.check_model(model, full_check=True)
    x = _images(3)
    f = extract(model, x)
    assert f.shape == (3, FEATURE_COUNT) and np.isfinite(f).all()
    cell = 64 // GRID
    blocks = x.reshape(3, 3, GRID, cell, GRID, cell).mean(axis=(3, 5)).reshape(3, -1)
    np.testing.assert_allclose(f[:, : GRID * GRID * 3], blocks, rtol=1e-5, atol=1e-6)


def test_a_local_defect_raises_the_residual_features_and_lighting_barely_moves_them() -> None:
    rng = np.random.default_rng(1)
    base = (0.5 + 0.02 * rng.standard_normal((1, 3, 64, 64))).astype(np.float32)
    scratched = base.copy()
    scratched[:, :, 30:32, 20:44] -= 0.3
    brighter = np.clip(base * 1.3, 0, 1)
    f = extract(feature_graph(64), np.concatenate([base, scratched, brighter]))
    ratio_max = GRID * GRID * 3 + 3 + 5 + 2  # max residual / median residual
    assert f[1, ratio_max] > 3 * f[0, ratio_max]
    assert f[2, ratio_max] == pytest.approx(f[0, ratio_max], rel=0.2)


def test_to_tensor_follows_the_contract() -> None:
    bgr = np.zeros((100, 80, 3), np.uint8)
    bgr[:, :, 2] = 255  # red
    t = to_tensor(bgr, 64)
    assert t.shape == (1, 3, 64, 64) and t.dtype == np.float32
    assert t[0, 0].min() == 1.0 and t[0, 2].max() == 0.0  # RGB order
    assert to_tensor(bgr, 32, 48, "gray").shape == (1, 1, 32, 48)
    expected = cv2.resize(bgr, (64, 64), interpolation=cv2.INTER_AREA)[:, :, ::-1] / 255
    np.testing.assert_allclose(t[0].transpose(1, 2, 0), expected, atol=1e-6)


def test_exported_artifact_equals_the_pipeline_and_places_absent_classes() -> None:
    x = _images(40, seed=2)
    x[20:, :, 10:20, 10:40] = 0.0  # half the frames carry a dark band
    features = feature_graph(64)
    f = extract(features, x)
    y = np.array([0] * 20 + [1] * 20)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(f, y)
    classes = ("ok", "dust", "scratch")  # "dust" never appears in training
    data = export(features, pipeline, ["ok", "scratch"], classes, 64)
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == ["image"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]
    assert model.graph.output[0].name == PROBABILITIES
    probs = predict_with(session_for(data), x)
    expected = pipeline.predict_proba(f)
    assert probs.shape == (40, 3)
    np.testing.assert_allclose(probs[:, 0], expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(probs[:, 2], expected[:, 1], atol=1e-5)
    assert (probs[:, 1] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == np.array([0] * 20 + [2] * 20)).mean() > 0.9


def _patch(tint: tuple[float, float, float] | None) -> np.ndarray:
    """A grey textured frame with a dark patch: a tinted film (oil-like) or a grey blotch."""
    rng = np.random.default_rng(3)
    frame = (0.6 + 0.02 * rng.standard_normal((1, 3, 64, 64))).astype(np.float32)
    if tint is None:
        frame[:, :, 26:38, 26:38] -= 0.25
    else:
        frame[:, :, 26:38, 26:38] *= np.array(tint, np.float32).reshape(1, 3, 1, 1)
    return frame


def test_a_tinted_film_shifts_the_colour_features_and_a_grey_blotch_does_not() -> None:
    from trainer.defectshape import COUNT

    film, blotch = _patch((0.55, 0.5, 0.42)), _patch(None)  # RGB: the film takes more blue
    f = extract(feature_graph(64), np.concatenate([film, blotch]))
    blue_in_dark = FEATURE_COUNT - COUNT + 1  # log B/G shift, weighted by darkening
    assert f[0, blue_in_dark] < -0.05
    assert abs(f[1, blue_in_dark]) < 0.02


def test_extent_tells_a_line_from_a_cluster_of_points() -> None:
    rng = np.random.default_rng(4)
    base = (0.5 + 0.01 * rng.standard_normal((1, 3, 64, 64))).astype(np.float32)
    line, points = base.copy(), base.copy()
    for i in range(20):
        line[:, :, 20 + i, 20 + i] += 0.3
    for yx in rng.integers(22, 42, (10, 2)):
        points[:, :, yx[0], yx[1]] += 0.3
    f = extract(feature_graph(64), np.concatenate([line, points]))
    elongation = FEATURE_COUNT - 18 + 1  # extent of the fine residual above 3x its median
    assert f[0, elongation] > 0.8 > f[1, elongation] + 0.3


def test_black_white_and_flat_frames_give_finite_features() -> None:
    """A lens cap or a saturated frame made ratios 0/0: `linefleet train` stopped (exit 3)."""
    frames = [np.full((48, 80, 3), level, np.uint8) for level in (0, 7, 255)]
    x = extract(feature_graph(64, texture=True), np.concatenate([to_tensor(f, 64) for f in frames]))
    assert np.isfinite(x).all() and np.abs(x).max() <= FEATURE_LIMIT


@pytest.mark.parametrize("shape", [(40, 1280), (48, 48), (400, 1280), (300, 40)])
def test_training_frames_are_resized_as_the_edge_resizes_them(shape: tuple[int, int]) -> None:
    """A line-scan strip lower than the input was area-averaged in training and interpolated
    on the device (0.23 mean difference per pixel at 1280 x 96 -> 128)."""
    from linefleet_core.modelio import Contract, prepare

    frame = np.random.default_rng(0).integers(0, 256, (*shape, 3)).astype(np.uint8)
    edge, _ = prepare(frame, Contract(("ok", "scratch"), height=64, width=64))
    assert np.allclose(to_tensor(frame, 64), edge, atol=1e-6)
