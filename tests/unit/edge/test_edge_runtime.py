from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_puller.engine import Engine, LineModels, in_canary
from edge_puller.gatewindow import MIN_GATE_FRAMES
from edge_puller.runtime import LoadedModel, ModelCache, ModelLoadError, load_model, preprocess
from linefleet_core.modelio import Contract, prepare
from linefleet_core.wire import ModelSpec
from tests.support.onnx_models import CLASSES
from tests.support.wiremodels import gates, model_spec
from tests.unit.edge.helpers import spec_for

LINE = "plant/line-1"
BRIGHT = np.full((48, 64, 3), 220, dtype=np.uint8)
DARK = np.full((48, 64, 3), 30, dtype=np.uint8)


def test_preprocess_follows_the_model_contract() -> None:
    frame = np.zeros((10, 20, 3), dtype=np.uint8)
    frame[:, :, 2] = 255  # pure red in BGR
    rgb, _ = prepare(frame, Contract(CLASSES, height=5, width=4, color="rgb"))
    assert rgb.shape == (1, 3, 5, 4) and rgb.dtype == np.float32
    assert rgb[0, 0].min() == 1.0 and rgb[0, 2].max() == 0.0  # red first in RGB
    bgr, _ = prepare(frame, Contract(CLASSES, height=5, width=4, color="bgr"))
    assert bgr[0, 2].min() == 1.0
    gray, _ = prepare(frame, Contract(CLASSES, height=5, width=4, channels=1, color="gray"))
    assert gray.shape == (1, 1, 5, 4)
    assert 0.29 < float(gray.mean()) < 0.31  # OpenCV's luma weight for red


def test_model_loads_and_predicts_by_brightness(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, "m", 1)
    model = load_model(Path(spec.artifact.url.removeprefix("file://")), spec)
    bright = model.predict(*preprocess(BRIGHT, model))
    dark = model.predict(*preprocess(DARK, model))
    assert bright.label == "ok" and dark.label == "scratch"
    assert 0.5 < bright.confidence <= 1.0


def test_smoke_test_refuses_wrong_class_count(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, "m", 1, classes=("ok", "scratch"))  # taxonomy says 3
    with pytest.raises(ModelLoadError, match=r"shape \[1, 2\], expected \[1, 3\]") as err:
        load_model(Path(spec.artifact.url.removeprefix("file://")), spec)
    assert err.value.reason == "smoke-failed"


def test_garbage_file_is_a_load_failure(tmp_path: Path) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(b"not a model")
    spec = model_spec("m@1", "0" * 64, 11, path.as_uri(), CLASSES, (1, 3, 32, 32))
    with pytest.raises(ModelLoadError, match="cannot load") as err:
        load_model(path, spec)
    assert err.value.reason == "load-failed"


def _cache_load(cache: ModelCache, spec: ModelSpec) -> LoadedModel:
    return cache.load(Path(spec.artifact.url.removeprefix("file://")), spec)


@pytest.fixture
def models(tmp_path: Path) -> dict[str, LoadedModel]:
    cache = ModelCache()
    found: dict[str, LoadedModel] = {}
    variants: list[tuple[str, int, dict[str, Any]]] = [
        ("inc", 1, {}),
        ("cand", 2, {"invert": True}),
        ("crashy", 3, {"crash_above": 0.7}),
    ]
    for name, version, kwargs in variants:
        spec = spec_for(tmp_path, name, version, **kwargs)
        found[name] = _cache_load(cache, spec)
    return found


def test_shadow_runs_both_and_serving_decides(models: dict[str, LoadedModel]) -> None:
    engine = Engine()
    engine.activate(LineModels(LINE, models["inc"], candidate=models["cand"], stage="shadow"))
    decision = engine.infer(LINE, "cam-1", "f1", BRIGHT)
    assert decision.decided_by == "serving" and decision.label == "ok"
    assert decision.candidate is not None and decision.candidate.label == "scratch"
    assert decision.serving is not None and decision.serving.model == "inc@1"


def test_canary_candidate_decides_its_fraction_deterministically(
    models: dict[str, LoadedModel],
) -> None:
    engine = Engine()
    engine.activate(
        LineModels(
            LINE,
            models["inc"],
            candidate=models["cand"],
            stage="canary",
            canary_fraction=0.25,
            gates=gates(min_shadow_agreement=0.0, max_defect_rate_jump=1.0),
        )
    )
    ids = [f"frame-{i}" for i in range(400)]
    decisions = [engine.infer(LINE, "cam-1", i, BRIGHT) for i in ids]
    by_candidate = [d for d in decisions if d.decided_by == "candidate"]
    assert 60 < len(by_candidate) < 140
    assert all(d.label == "scratch" for d in by_candidate)
    assert all(d.label == "ok" for d in decisions if d.decided_by == "serving")
    assert [d.frame_id for d in by_candidate] == [i for i in ids if in_canary(i, 0.25)]


def test_rollback_is_a_swap_to_the_loaded_standby(models: dict[str, LoadedModel]) -> None:
    engine = Engine()
    inc, cand = models["inc"], models["cand"]
    engine.activate(LineModels(LINE, cand, standby=inc))
    assert engine.infer(LINE, "c", "1", BRIGHT).label == "scratch"
    engine.activate(LineModels(LINE, inc, standby=cand))
    decision = engine.infer(LINE, "c", "2", BRIGHT)
    assert decision.label == "ok" and decision.model == "inc@1"


def test_candidate_that_raises_falls_back_and_says_why(models: dict[str, LoadedModel]) -> None:
    engine = Engine()
    engine.activate(
        LineModels(
            LINE, models["inc"], candidate=models["crashy"], stage="canary", canary_fraction=0.5
        )
    )
    ids = [i for i in (f"f{n}" for n in range(50)) if in_canary(i, 0.5)]
    first = engine.infer(LINE, "c", ids[0], BRIGHT)  # bright frames crash the candidate
    assert first.label == "ok" and first.decided_by == "serving"  # the frame is not lost
    assert engine.lines()[LINE].candidate is None
    (event,) = engine.drain_events()
    assert (event.type, event.reason, event.model) == ("fallback", "candidate-error", "crashy@3")
    assert engine.infer(LINE, "c", ids[1], BRIGHT).decided_by == "serving"


def test_candidate_over_latency_budget_is_dropped(models: dict[str, LoadedModel]) -> None:
    engine = Engine()
    engine.activate(
        LineModels(
            LINE,
            models["inc"],
            candidate=models["cand"],
            stage="shadow",
            gates=gates(max_latency_p95_ms=1e-6),
        )
    )
    for n in range(30):
        engine.infer(LINE, "c", str(n), DARK)
    assert engine.lines()[LINE].candidate is None
    (event,) = engine.drain_events()
    assert (event.type, event.reason) == ("rollback", "max_latency_p95_ms")
    assert "p95 latency" in event.message


def test_no_model_yet_is_an_error_decision_not_an_exception() -> None:
    decision = Engine().infer(LINE, "c", "1", DARK)
    assert decision.label is None and decision.error == "no model"


def test_non_finite_output_is_an_error_not_an_ok(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    # probabilities = softmax(mean / mean-variation): NaN on a flat frame, fine on texture
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("ReduceMin", ["image"], ["lo"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("ReduceMax", ["image"], ["hi"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["hi", "lo"], ["spread"]),
        helper.make_node("Sub", ["m", "lo"], ["above"]),
        helper.make_node("Div", ["above", "spread"], ["ratio"]),
        helper.make_node("Unsqueeze", ["ratio", "axes"], ["col"]),
        helper.make_node("Concat", ["col", "col", "col"], ["logits"], axis=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "ratio",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "ratio.onnx"
    path.write_bytes(model.SerializeToString())
    spec = model_spec("ratio@1", "0" * 64, 1, path.as_uri(), CLASSES, (1, 3, 32, 32))
    loaded = load_model(path, spec)  # the smoke test uses texture: it loads
    engine = Engine()
    engine.activate(LineModels(LINE, loaded))
    decision = engine.infer(LINE, "c", "flat", DARK)  # a flat frame: NaN probabilities
    assert decision.label is None and "not a finite" in decision.error


def test_canary_that_disagrees_is_rolled_back_by_its_gate(models: dict[str, LoadedModel]) -> None:
    engine = Engine()
    engine.activate(
        LineModels(
            LINE, models["inc"], candidate=models["cand"], stage="canary", canary_fraction=0.5
        )
    )
    decided = 0
    for n in range(400):
        decision = engine.infer(LINE, "c", f"f{n}", BRIGHT)
        decided += decision.decided_by == "candidate"
        if engine.lines()[LINE].candidate is None:
            break
    assert engine.lines()[LINE].candidate is None
    assert decided == MIN_GATE_FRAMES  # judged on exactly the minimum sample, then dropped
    (event,) = engine.drain_events()
    assert (event.type, event.reason) == ("rollback", "min_shadow_agreement")
    assert "agrees with the serving model on 0.0%" in event.message


def test_shadow_disagreement_is_left_to_the_reconciler(models: dict[str, LoadedModel]) -> None:
    engine = Engine()
    engine.activate(LineModels(LINE, models["inc"], candidate=models["cand"], stage="shadow"))
    for n in range(200):
        engine.infer(LINE, "c", f"f{n}", BRIGHT)
    assert engine.lines()[LINE].candidate is not None
    assert engine.drain_events() == []
