"""Along-the-grain and blob statistics (`trainer.texturestats`) and the boosted-trees export."""

from __future__ import annotations

import math

import numpy as np
import onnx

from trainer.features import FEATURE_COUNT, extract, feature_count, feature_graph
from trainer.grainfree import COUNT as GRAINFREE
from trainer.texturestats import COUNT
from trainer.train import TrainConfig, classifier, export, predict_with, session_for

SIZE = 64


def _grain(rng: np.random.Generator, angle: float) -> np.ndarray:
    """Brushed-looking grey frames: streaks across one direction, none along it."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    across = -math.sin(angle) * xx + math.cos(angle) * yy
    phase = rng.uniform(0, 2 * math.pi, 6)
    streaks = sum(
        np.sin(across * f + p) for f, p in zip((0.9, 1.7, 2.6, 3.1, 0.5, 1.2), phase, strict=True)
    )
    grey = 0.5 + 0.02 * streaks + 0.005 * rng.standard_normal((SIZE, SIZE))
    return np.repeat(grey[None, None].astype(np.float32), 3, axis=1)


def _dent(frame: np.ndarray) -> np.ndarray:
    """A shaded bowl: lit on one rim, shadowed on the other (no grain direction)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    u, v = (xx - 30) / 5, (yy - 34) / 5
    shading = (0.6 * u + 0.8 * v) * np.exp(-(u * u + v * v) * 1.5)
    return np.clip(frame + 0.12 * shading[None, None], 0, 1).astype(np.float32)


def test_a_dent_on_grain_stands_out_along_the_grain_whatever_its_direction() -> None:
    rng = np.random.default_rng(0)
    graph = feature_graph(SIZE, texture=True)
    onnx.checker.check_model(graph, full_check=True)
    for angle in (0.1, 1.2, 2.0):
        plain = _grain(rng, angle)
        f = extract(graph, np.concatenate([plain, _dent(plain), np.clip(plain * 1.4, 0, 1)]))
        assert f.shape == (3, FEATURE_COUNT + COUNT + GRAINFREE) and np.isfinite(f).all()
        tex = f[:, FEATURE_COUNT:]
        # per scale: [directional ratio, cell z max, top-4 z, p99.5/median, max/median, blob ...]
        assert tex[0, 0] < 0.5  # the grain is directional: little energy along it
        z_along = tex[:, 8 + 1]  # middle scale, strongest cell along the grain
        assert z_along[1] > 2 * z_along[0]
        np.testing.assert_allclose(tex[2], tex[0], rtol=0.05, atol=0.05)  # brighter light


def test_boosted_trees_export_equals_the_pipeline_and_is_served_by_onnxruntime() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([_grain(rng, a) for a in rng.uniform(0, math.pi, 40)])
    x[20:] = np.concatenate([_dent(f[None]) for f in x[20:]])
    graph = feature_graph(SIZE, texture=True)
    f = extract(graph, x)
    y = np.array([0] * 20 + [1] * 20)
    pipeline = classifier(TrainConfig(classifier="boosted")).fit(f, y)
    data = export(graph, pipeline, ["ok", "dent"], ("ok", "scratch", "dent"), SIZE, texture=True)
    model = onnx.load_from_string(data)
    assert {o.domain for o in model.opset_import} >= {"", "ai.onnx.ml"}
    probs = predict_with(session_for(data), x)
    expected = pipeline.predict_proba(f)
    np.testing.assert_allclose(probs[:, [0, 2]], expected, atol=1e-4)
    assert (probs[:, 1] == 0).all() and feature_count(True) == FEATURE_COUNT + COUNT + GRAINFREE
