"""The model contract as code (`linefleet_core/modelio.py`): preprocessing and decisions, table
by table, on real onnxruntime where a graph is involved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from linefleet_core.modelio import Contract, Placement, decide, prepare, softmax, tiles
from tests.support.external_models import anomaly_model

ANOMALY = Contract(
    ("ok", "dent"), height=64, width=64, task="anomaly", layout="NHWC",
    outputs={"score": "score_column", "threshold": 0.6},
)  # fmt: skip


def test_tiles_cover_the_frame_with_the_last_ones_aligned_to_the_edges() -> None:
    found = tiles(2448, 2048, (256, 0))
    assert len(found) == 10 * 8
    assert found[9] == (2448 - 256, 0, 256, 256)  # the last of a row ends at the edge
    assert found[-1] == (2448 - 256, 2048 - 256, 256, 256)
    assert tiles(300, 200, (256, 64)) == [(0, 0, 256, 200), (44, 0, 256, 200)]
    assert tiles(100, 80, None) == [(0, 0, 100, 80)]


def test_normalisation_layout_and_letterbox_placement() -> None:
    frame = np.full((50, 100, 3), 255, dtype=np.uint8)
    c = Contract(("ok", "x"), height=40, width=40, resize="letterbox", layout="NHWC",
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))  # fmt: skip
    batch, (place,) = prepare(frame, c)
    assert batch.shape == (1, 40, 40, 3)
    assert batch[0, 20, 20, 0] == pytest.approx((1.0 - 0.5) / 0.25)  # image: (1 - mean) / std
    assert batch[0, 0, 20, 0] == pytest.approx((114 / 255 - 0.5) / 0.25)  # the grey padding
    assert place.to_frame(0, 10) == (0, 0)  # 100x50 -> 40x20, padded 10 px top and bottom
    assert place.to_frame(40, 30) == (100, 50)


def test_a_camera_roi_is_cut_before_the_model_sees_the_frame() -> None:
    frame = np.zeros((100, 100, 3), dtype=np.uint8)
    frame[10:20, 30:50] = 255
    batch, (place,) = prepare(frame, Contract(("ok", "x"), height=10, width=20), (30, 10, 20, 10))
    assert batch.min() == 1.0 and place.to_frame(0, 0) == (30, 10)


def test_logits_become_probabilities_and_the_worst_tile_decides() -> None:
    c = Contract(("ok", "scratch"), height=8, width=8, outputs={"logits": "logits"})
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [4.0, 0.0]], dtype=np.float32)
    verdict = decide(c, [logits], [Placement(0, 0, 1, 1)] * 3)
    assert (verdict.label, verdict.tile) == ("scratch", 1)
    assert verdict.confidence == pytest.approx(float(softmax(logits[1:2])[0, 1]))


def test_detection_thresholds_are_per_class_and_boxes_are_in_frame_pixels() -> None:
    c = Contract(("scratch", "dent"), height=64, width=64, task="detection",
                 outputs={"boxes": "o", "score_thresholds": {"scratch": 0.5, "dent": 0.9}})  # fmt: skip
    boxes = np.zeros((1, 6, 3), dtype=np.float32)
    boxes[0, :4, 0] = [10, 10, 4, 4]
    boxes[0, 5, 0] = 0.8  # a dent at 0.8: under the dent threshold
    boxes[0, :4, 1] = [40, 40, 8, 8]
    boxes[0, 4, 1] = 0.6  # a scratch at 0.6: over its threshold
    verdict = decide(c, [boxes], [Placement(100, 50, 0.5, 0.5)])
    assert verdict.label == "scratch" and verdict.confidence == pytest.approx(0.6)
    (box,) = verdict.boxes
    assert (box.x1, box.y1, box.x2, box.y2) == (172, 122, 188, 138)
    boxes[0, 4, 1] = 0.2
    assert decide(c, [boxes], [Placement(0, 0, 1, 1)]).label == "ok"


def test_malformed_outputs_are_errors_never_an_ok() -> None:
    c = Contract(("ok", "scratch"), height=8, width=8)
    with pytest.raises(ValueError, match="not a finite output"):
        decide(c, [np.array([[np.nan, 1.0]], dtype=np.float32)], [Placement(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="2 values per input, expected 3"):
        decide(Contract(("ok", "a", "b"), 8, 8), [np.ones((1, 2))], [Placement(0, 0, 1, 1)])


def test_tiling_finds_a_small_defect_that_shrinking_the_whole_frame_loses(tmp_path: Path) -> None:
    built = anomaly_model(tmp_path / "anomaly.onnx")
    session = ort.InferenceSession(str(built.path), providers=["CPUExecutionProvider"])
    frame = np.full((2048, 2448, 3), 230, dtype=np.uint8)
    frame[1300:1340, 1800:1840] = 5  # 40 px on a 5-megapixel frame

    def run(c: Contract) -> tuple[str, float | None, int | None]:
        batch, places = prepare(frame, c)
        scores = [
            session.run(["score_column"], {"input": batch[i : i + 1]})[0] for i in range(len(batch))
        ]
        verdict = decide(c, [np.concatenate(scores)], places)
        return verdict.label, verdict.score, verdict.tile

    whole = run(ANOMALY)
    assert whole[0] == "ok"  # 40 px become a third of a pixel at 64 px: the defect vanishes
    label, score, tile = run(Contract(**{**ANOMALY.__dict__, "tiling": (256, 0)}))
    assert label == "dent" and score is not None and score > 0.6
    assert tile is not None and tiles(2448, 2048, (256, 0))[tile][:2] == (1792, 1280)
