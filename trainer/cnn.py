"""The CNN backend: a small convolutional network in PyTorch (CPU), exported with torch.onnx.

    model = fit_cnn(x, y, classes, present, CnnConfig(size=64, epochs=30))
    model.onnx     # image [1, 3, S, S] in [0, 1] -> probabilities [1, K]: the edge's contract

The exported graph holds everything the edge must not re-implement:

- a region of interest (`roi`: x0, y0, x1, y1 as fractions of the frame), cut out in the graph;
- tiling: the ROI is split into `tiles` x `tiles` tiles; each tile is standardised on its own
  (its mean and spread per channel, so a line's lighting level and contrast drop out) and goes
  through the same convolutional trunk; the tiles' pooled features are max-pooled, so a small
  defect on a high-resolution frame is seen at the tile's full resolution and not averaged away;
- a class mask: taxonomy classes absent from training get probability 0 (rows still sum to 1).

Training augments every batch for the cross-line story: angle (exact flips and quarter turns;
on half the frames a small rotation) and scale (zoom 0.9-1.1 on the same half), lighting
(gain, colour cast, gamma, gradient, vignette, noise) only when `lighting` asks for it (the
graph's per-tile standardisation already takes gain and offset out), with class-balanced
sampling weights so rare defects are not drowned by `ok`. The network is the
same at training and serving time: training scores the exported ONNX, as the edge runs it.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from linefleet_core.errors import PermanentError

INPUT = "image"
OUTPUT = "probabilities"
OPSET = 17


@dataclass(frozen=True)
class CnnConfig:
    size: int = 64
    """Model input side in pixels (the edge resizes each frame to it)."""
    roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    """x0, y0, x1, y1 as fractions of the frame: the part the network looks at."""
    tiles: int = 1
    """Tiles per side of the ROI (1: the whole ROI at once)."""
    epochs: int = 30
    batch: int = 32
    lr: float = 3e-3
    width: int = 16
    """Channels of the stem (doubling at each of the three pooling stages)."""
    augment: bool = True
    lighting: float = 0.0
    """Strength of the lighting jitter in `augment` (1: its full ranges; 0: geometry only).
    0 by default: the graph standardises each tile (gain, offset and contrast drop out), and
    on the independent source (~1,000 frames, 128 px) the jitter at full strength took the
    holdout from 0.93 to 0.83 (docs/trainer.md)."""
    validation: float = 0.15
    """Share of the training frames kept apart (stratified by line and class) to pick the best
    epoch and the operating point; 0, or too few frames, trains on everything for `epochs`."""
    patience: int = 8
    """Stop when the validation score has not improved for this many epochs."""
    max_escape: float | None = 0.05
    """Operating point: the `ok` decision is biased until the validation escape rate is at most
    this (None: plain argmax)."""
    seed: int = 0
    threads: int = 0
    """PyTorch's intra-op threads; 0: PyTorch's default (OMP_NUM_THREADS if set, else the
    cores), so `OMP_NUM_THREADS=1` keeps a run on a busy machine from spinning on a second."""

    def params(self) -> dict[str, Any]:
        return {
            "cnn_roi": ",".join(f"{v:g}" for v in self.roi),
            "cnn_tiles": self.tiles,
            "cnn_epochs": self.epochs,
            "cnn_batch": self.batch,
            "cnn_lr": self.lr,
            "cnn_width": self.width,
            "cnn_augment": self.augment,
            "cnn_lighting": self.lighting,
            "cnn_validation": self.validation,
            "cnn_max_escape": "argmax" if self.max_escape is None else self.max_escape,
        }

    def roi_pixels(self) -> tuple[int, int, int, int]:
        """y0, y1, x0, x1 in input pixels, each side a multiple of `tiles` (16+ px per tile)."""
        x0, y0, x1, y1 = self.roi
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise PermanentError(f"--roi {self.roi}: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
        if self.tiles < 1:
            raise PermanentError(f"--tiles {self.tiles}: need at least 1")

        def span(lo: float, hi: float) -> tuple[int, int]:
            a, b = round(lo * self.size), round(hi * self.size)
            side = ((b - a) // self.tiles) * self.tiles
            if side // self.tiles < 16:
                raise PermanentError(
                    f"ROI {self.roi} at {self.size} px in {self.tiles}x{self.tiles} tiles leaves "
                    "tiles under 16 px; use a larger --size or fewer tiles"
                )
            return a, a + side

        ya, yb = span(y0, y1)
        xa, xb = span(x0, x1)
        return ya, yb, xa, xb


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise PermanentError(
            "the cnn backend needs PyTorch: pip install torch==2.13.0 (the trainer extra pins "
            "it; that exact pin takes the CPU wheel)"
        ) from None
    return torch


def build_net(config: CnnConfig, k: int, present_mask: Sequence[bool], ok: int = -1) -> Any:
    """The network; `forward` gives probabilities (the contract), `logits` what training needs.

    A 3x3 stem with stride 2 reads every input pixel (a one-pixel scratch still reaches it)
    and is max-pooled at once (the strongest response of each 4x4 patch survives), so the
    three conv stages after it (BatchNorm, max-pooling) cost what a quarter-size input would;
    then global max and mean pooling, dropout and a linear head.
    `ok_bias` (a buffer, 0 at first) is added to the `ok` logit: the operating point."""
    torch = _torch()
    nn = torch.nn
    ya, yb, xa, xb = config.roi_pixels()
    t = config.tiles
    w = config.width

    def conv(cin: int, cout: int, stride: int = 1) -> list[Any]:
        return [
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        ]

    module: Any = nn.Module

    class Net(module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(
                *conv(3, w, 2),
                nn.MaxPool2d(2),
                *conv(w, 2 * w),
                nn.MaxPool2d(2),
                *conv(2 * w, 4 * w),
                nn.MaxPool2d(2),
                *conv(4 * w, 8 * w),
            )
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(16 * w, k)
            mask = torch.tensor([0.0 if p else -1e4 for p in present_mask])
            self.register_buffer("mask", mask)
            self.register_buffer("ok_bias", torch.zeros(k))
            self.ok = ok

        def logits(self, x: Any) -> Any:
            x = x[:, :, ya:yb, xa:xb]
            b, c = x.shape[0], x.shape[1]
            th, tw = (yb - ya) // t, (xb - xa) // t
            x = x.reshape(b, c, t, th, t, tw).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, th, tw)
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = x.std(dim=(2, 3), keepdim=True)
            x = (x - mean) / (std + 0.02)
            f = self.trunk(x)
            pooled = torch.cat([f.amax(dim=(2, 3)), f.mean(dim=(2, 3))], dim=1)
            pooled = pooled.reshape(b, t * t, -1).amax(dim=1)
            return self.head(self.drop(pooled)) + self.mask

        def forward(self, x: Any) -> Any:
            return torch.softmax(self.logits(x) + self.ok_bias, dim=1)

    return Net()


def augment(x: Any, generator: Any, lighting: float = 0.0) -> Any:
    """Angle, scale and lighting jitter of a batch [B, 3, S, S] in [0, 1] (torch).

    Angle: flips and quarter turns of every frame (exact: the samples land on pixel centres,
    so a one-pixel scratch stays one pixel wide); on half the frames, a rotation of up to 15
    degrees and a zoom of 0.9-1.1 on top (interpolated, so it blurs what is one pixel wide:
    only half the frames, and a narrow zoom). Lighting, scaled by `lighting` (1: overall gain
    0.6-1.4, per-channel gain 0.85-1.15 (colour cast), gamma 0.7-1.4, an offset of up to 0.08,
    a linear illumination gradient in a random direction, a vignette, and sensor noise of up
    to 0.01; 0: none). On the independent source at 128 px, rotation and zoom 0.8-1.25 on
    every frame with full lighting and noise of up to 0.02 held the holdout at 0.81; exact
    turns and flips alone reached 0.96 (docs/trainer.md)."""
    torch = _torch()
    f = torch.nn.functional
    b, size = x.shape[0], x.shape[-1]

    def u(lo: float, hi: float, *shape: int) -> Any:
        return lo + (hi - lo) * torch.rand(b, *shape, generator=generator)

    free = (torch.rand(b, generator=generator) < 0.5).float()
    angle = u(-math.pi / 12, math.pi / 12) * free + (
        torch.randint(0, 4, (b,), generator=generator) * (math.pi / 2)
    )
    scale = torch.exp(u(math.log(0.9), math.log(1.1)) * free)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, torch.zeros(b)], 1),
            torch.stack([sin * flip, cos, torch.zeros(b)], 1),
        ],
        1,
    )
    grid = f.affine_grid(theta, list(x.shape), align_corners=False)
    x = f.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if lighting <= 0:
        return x
    s = lighting
    ramp = torch.linspace(-0.5, 0.5, size)
    yy, xx = ramp[:, None].expand(size, size), ramp[None, :].expand(size, size)
    direction = u(0, 2 * math.pi, 1, 1)
    slope = u(0.0, 0.4 * s, 1, 1)
    field = 1 + slope * (torch.cos(direction) * xx + torch.sin(direction) * yy)
    field = field * (1 - u(0.0, 0.5 * s, 1, 1) * (xx * xx + yy * yy) * 2)
    gain = u(1 - 0.4 * s, 1 + 0.4 * s, 1, 1, 1) * u(1 - 0.15 * s, 1 + 0.15 * s, 3, 1, 1)
    gamma = torch.exp(u(-0.35 * s, 0.35 * s, 1, 1, 1))
    noise = torch.randn(x.shape, generator=generator) * u(0.0, 0.01 * s, 1, 1, 1)
    jittered = x.clamp(1e-4, 1) ** gamma * gain * field[:, None]
    return (jittered + u(-0.08 * s, 0.08 * s, 1, 1, 1) + noise).clamp(0, 1)


@dataclass
class FittedCnn:
    onnx: bytes
    seconds: float
    epochs: int
    """Epochs run (early stopping may end before `CnnConfig.epochs`)."""
    best_epoch: int = 0
    ok_bias: float = 0.0
    """Added to the `ok` logit (the operating point chosen on the validation frames)."""
    validation_frames: int = 0

    def params(self) -> dict[str, Any]:
        return {
            "cnn_epochs_run": self.epochs,
            "cnn_best_epoch": self.best_epoch,
            "cnn_ok_bias": round(self.ok_bias, 3),
            "cnn_validation_frames": self.validation_frames,
            "cnn_train_seconds": round(self.seconds, 1),
        }


def balanced_weights(labels: Sequence[int], groups: Sequence[str]) -> Any:
    """Sampling weights giving every (group, class) cell the same total weight, so a rare
    defect class, or a line with few frames, is drawn as often as the others (numpy)."""
    cells = list(zip(groups, labels, strict=True))
    counts: dict[tuple[str, int], int] = {}
    for cell in cells:
        counts[cell] = counts.get(cell, 0) + 1
    return np.array([1.0 / counts[c] for c in cells])


def validation_split(
    labels: Sequence[int], groups: Sequence[str], share: float, seed: int
) -> tuple[list[int], list[int]]:
    """Training and validation indices, each (group, class) cell split by `share` (at least
    one frame of a cell stays in training). No validation when it would be under 20 frames."""
    if share <= 0:
        return list(range(len(labels))), []
    rng = np.random.default_rng(seed)
    cells: dict[tuple[str, int], list[int]] = {}
    for i, cell in enumerate(zip(groups, labels, strict=True)):
        cells.setdefault(cell, []).append(i)
    held: list[int] = []
    for members in cells.values():
        n = min(len(members) - 1, round(len(members) * share))
        if n > 0:
            held += [int(i) for i in rng.permutation(members)[:n]]
    if len(held) < 20:
        return list(range(len(labels))), []
    keep = sorted(set(range(len(labels))) - set(held))
    return keep, sorted(held)


def operating_bias(logits: Any, labels: Any, ok: int, max_escape: float) -> float:
    """The bias on the `ok` logit nearest 0 (never towards `ok`) whose escape rate on these
    frames is at most `max_escape` (numpy logits [N, K], labels [N]); the most negative bias
    tried if none is. Defect frames called another defect are not escapes. (The pooled rule
    of `trainer.operating.shared_point`, no line binding.)"""
    from trainer.operating import shared_point

    return shared_point(np.asarray(logits), labels, ok, None, max_escape).bias


def fit_cnn(
    x: Any,
    y: Any,
    classes: Sequence[str],
    present: Sequence[str],
    config: CnnConfig,
    groups: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> FittedCnn:
    """Train on images `x` [N, 3, S, S] (float32, [0, 1]) with labels `y` (taxonomy indices);
    `groups` (e.g. each frame's line) stratifies sampling and the validation split;
    `progress` gets one line per epoch."""
    torch = _torch()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    k = len(classes)
    ok = list(classes).index("ok") if "ok" in classes else -1
    net = build_net(config, k, [c in present for c in classes], ok)
    y = np.asarray(y, dtype=np.int64)
    groups = list(groups) if groups is not None else [""] * len(y)
    train_idx, val_idx = validation_split(y, groups, config.validation, config.seed)
    images = torch.from_numpy(np.ascontiguousarray(x[train_idx], dtype=np.float32))
    labels = torch.from_numpy(y[train_idx])
    weights = torch.from_numpy(balanced_weights(y[train_idx], [groups[i] for i in train_idx]))
    val_images = torch.from_numpy(np.ascontiguousarray(x[val_idx], dtype=np.float32))
    val_labels = y[val_idx]
    val_weights = balanced_weights(val_labels, [groups[i] for i in val_idx]) if val_idx else None
    steps = max(1, math.ceil(len(labels) / config.batch))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=steps * max(1, config.epochs)
    )
    best: tuple[float, int, dict[str, Any]] | None = None
    ran = 0
    for epoch in range(config.epochs):
        net.train()
        order = torch.multinomial(weights, len(labels), replacement=True, generator=generator)
        for s in range(steps):
            idx = order[s * config.batch : (s + 1) * config.batch]
            if len(idx) < 2:
                continue
            batch = images[idx]
            if config.augment:
                batch = augment(batch, generator, config.lighting)
            loss = torch.nn.functional.cross_entropy(
                net.logits(batch), labels[idx], label_smoothing=0.05
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        ran = epoch + 1
        if val_weights is None:
            if progress:
                progress(f"epoch {ran}/{config.epochs}")
            continue
        logits = _logits(net, val_images)
        right = logits.argmax(axis=1) == val_labels
        score = float(np.sum(val_weights * right) / np.sum(val_weights))
        if progress:
            elapsed = time.perf_counter() - started
            progress(f"epoch {ran}/{config.epochs}: validation {score:.3f} ({elapsed:.0f} s)")
        if best is None or score >= best[0]:
            best = (score, ran, {n: v.clone() for n, v in net.state_dict().items()})
        elif ran - best[1] >= config.patience:
            break
    bias, best_epoch = 0.0, ran
    if best is not None:
        net.load_state_dict(best[2])
        best_epoch = best[1]
        if config.max_escape is not None and ok >= 0:
            bias = operating_bias(_logits(net, val_images), val_labels, ok, config.max_escape)
            net.ok_bias[ok] = bias
    net.eval()
    return FittedCnn(
        export_onnx(net, config.size),
        time.perf_counter() - started,
        ran,
        best_epoch,
        bias,
        len(val_idx),
    )


def _logits(net: Any, images: Any) -> Any:
    torch = _torch()
    net.eval()
    with torch.no_grad():
        rows = [net.logits(images[i : i + 64]) for i in range(0, len(images), 64)]
    return torch.cat(rows).numpy()


def export_onnx(net: Any, size: int) -> bytes:
    torch = _torch()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, size, size),),
            buffer,
            input_names=[INPUT],
            output_names=[OUTPUT],
            opset_version=OPSET,
            dynamo=False,
        )
    import onnx

    model = onnx.load_from_string(buffer.getvalue())
    model.producer_name = "linefleet-trainer-cnn"
    onnx.checker.check_model(model, full_check=True)
    data: bytes = model.SerializeToString()
    return data
