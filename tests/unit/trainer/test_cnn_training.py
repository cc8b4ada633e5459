"""Training policy: balanced sampling, the validation split, the operating point, the input size.

Pure numpy (no PyTorch) except the last test, which checks the exported graph applies the
operating point; the training itself is measured in `bench/bench_backends.py`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.torchreq import require_torch
from trainer.cnn import (
    CnnConfig,
    augment,
    balanced_weights,
    build_net,
    export_onnx,
    operating_bias,
    validation_split,
)
from trainer.datasets import Item, Split
from trainer.frames import FrameStore
from trainer.train import auto_size


def test_balanced_weights_give_every_line_and_class_the_same_share() -> None:
    # line-1: 6 ok, 2 dent; line-2: 1 ok, 1 scratch: a cell's weights sum to 1 whatever its size.
    groups = ["l1"] * 8 + ["l2"] * 2
    labels = [0] * 6 + [3] * 2 + [0, 1]
    w = balanced_weights(labels, groups)
    totals: Counter[tuple[str, int]] = Counter()
    for g, y, x in zip(groups, labels, w, strict=True):
        totals[(g, y)] += x
    assert totals == pytest.approx({("l1", 0): 1.0, ("l1", 3): 1.0, ("l2", 0): 1.0, ("l2", 1): 1.0})
    drawn = np.random.default_rng(0).choice(10, 40_000, p=w / w.sum())
    rare = np.isin(drawn, [8, 9]).mean()  # line-2's two frames: half of the line cells
    assert rare == pytest.approx(0.5, abs=0.02)


def test_validation_split_is_stratified_disjoint_and_keeps_each_cell_in_training() -> None:
    groups = ["l1"] * 100 + ["l2"] * 60 + ["l3"] * 1
    labels = [i % 4 for i in range(100)] + [0] * 40 + [2] * 20 + [1]
    train, val = validation_split(labels, groups, 0.15, seed=3)
    assert sorted(train + val) == list(range(161)) and not set(train) & set(val)
    cells = Counter((groups[i], labels[i]) for i in val)
    assert cells == {("l1", 0): 4, ("l1", 1): 4, ("l1", 2): 4, ("l1", 3): 4,
                     ("l2", 0): 6, ("l2", 2): 3}  # fmt: skip
    assert 160 in train  # a cell of one frame stays in training
    assert validation_split(labels, groups, 0.15, seed=3) == (train, val)  # deterministic
    assert validation_split(labels, groups, 0.0, seed=3) == (list(range(161)), [])
    few = validation_split([0, 1] * 20, ["l"] * 40, 0.15, seed=0)
    assert few == (list(range(40)), [])  # 6 frames would be too few to choose anything on


def test_operating_bias_is_the_smallest_shift_away_from_ok_that_meets_the_escape_target() -> None:
    ok = 0
    # Ten defect frames: margins of ok over the best defect logit; two ok frames.
    margins = np.array([-3.0, -2.0, -2.0, -1.0, -1.0, -0.5, -0.5, 0.1, 0.6, 1.1])
    logits = np.zeros((12, 3))
    logits[:10, 0] = margins
    logits[10:, 0] = 4.0
    labels = np.array([1] * 5 + [2] * 5 + [0, 0])
    assert operating_bias(logits, labels, ok, 0.30) == 0.0  # 3 of 10 escape at argmax
    assert operating_bias(logits, labels, ok, 0.20) == -0.25  # 0.1 no longer wins
    assert operating_bias(logits, labels, ok, 0.0) == -1.25  # all ten called defects
    assert operating_bias(logits, labels, -1, 0.0) == 0.0  # no `ok` class: nothing to shift
    never = np.zeros((2, 2))
    never[:, 0] = 20.0
    assert operating_bias(never, np.array([1, 1]), ok, 0.0) == -8.0  # capped: the most tried


def test_the_exported_graph_applies_the_operating_point() -> None:
    require_torch()
    import onnxruntime as ort
    import torch

    config = CnnConfig(size=16, width=4)
    net = build_net(config, 3, [True, True, True], ok=0)
    net.eval()
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)

    def run() -> np.ndarray:
        session = ort.InferenceSession(export_onnx(net, 16), providers=["CPUExecutionProvider"])
        out: np.ndarray = session.run(None, {"image": x})[0]
        return out

    before = run()
    with torch.no_grad():
        net.ok_bias[0] = -2.0
    after = run()
    assert after.sum() == pytest.approx(1.0, abs=1e-5)
    # p(ok) / p(other) shrinks by e^2; the defects keep their ratio to each other.
    assert after[0, 0] / after[0, 1] == pytest.approx(
        before[0, 0] / before[0, 1] * np.exp(-2), 1e-3
    )
    assert after[0, 1] / after[0, 2] == pytest.approx(before[0, 1] / before[0, 2], 1e-4)


def test_augment_turns_half_the_frames_exactly_so_a_one_pixel_scratch_stays_sharp() -> None:
    require_torch()
    import torch

    # 64 frames with a one-pixel bright line on a random texture: without lighting, a frame is
    # either an exact flip/quarter turn of its original (no interpolation) or a free rotation.
    rng = np.random.default_rng(0)
    x = rng.random((64, 3, 24, 24), dtype=np.float32) * 0.5
    x[:, :, 9, 3:20] = 1.0
    out = augment(torch.from_numpy(x), torch.Generator().manual_seed(1), lighting=0.0).numpy()
    exact = 0
    for a, b in zip(x, out, strict=True):
        turns = [np.rot90(f, k, axes=(1, 2)) for f in (a, a[:, :, ::-1]) for k in range(4)]
        exact += any(np.allclose(b, t, atol=1e-5) for t in turns)
    assert 20 <= exact <= 44  # about half: the others are rotated and zoomed freely
    lit = augment(torch.from_numpy(x), torch.Generator().manual_seed(1), lighting=1.0).numpy()
    assert lit.min() >= 0 and not np.allclose(lit, out, atol=0.01)  # lighting changes frames


@pytest.mark.parametrize(
    ("side", "expected"), [(128, 128), (640, 128), (100, 96), (70, 64), (40, 64)]
)
def test_auto_size_keeps_the_resolution_the_frames_have(
    tmp_path: Path, side: int, expected: int
) -> None:
    frames = FrameStore(tmp_path / "frames")
    items = []
    for n in range(5):
        image = np.full((side, side + 40, 3), 10 * n, np.uint8)  # the shorter side counts
        ok, png = cv2.imencode(".png", image)
        assert ok
        sha = frames.put(bytes(png))
        items.append(Item(sha, "toledo", "line-1", "cam-1", "ok", Split.TRAIN))
    assert auto_size(frames, items) == expected
