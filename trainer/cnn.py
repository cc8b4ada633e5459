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

Training augments every batch for the cross-line story: lighting (brightness, per-channel gain,
gamma), angle (a small rotation plus flips and quarter turns) and scale (zoom 0.8-1.25), with
class-balanced sampling weights so rare defects are not drowned by `ok`. The network is the
same at training and serving time: training scores the exported ONNX, as the edge runs it.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Sequence
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
    """Channels of the first block (doubling twice)."""
    augment: bool = True
    seed: int = 0
    threads: int = 2

    def params(self) -> dict[str, Any]:
        return {
            "cnn_roi": ",".join(f"{v:g}" for v in self.roi),
            "cnn_tiles": self.tiles,
            "cnn_epochs": self.epochs,
            "cnn_batch": self.batch,
            "cnn_lr": self.lr,
            "cnn_width": self.width,
            "cnn_augment": self.augment,
        }

    def roi_pixels(self) -> tuple[int, int, int, int]:
        """y0, y1, x0, x1 in input pixels, each side a multiple of `tiles` (at least 8 per tile)."""
        x0, y0, x1, y1 = self.roi
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise PermanentError(f"--roi {self.roi}: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
        if self.tiles < 1:
            raise PermanentError(f"--tiles {self.tiles}: need at least 1")

        def span(lo: float, hi: float) -> tuple[int, int]:
            a, b = round(lo * self.size), round(hi * self.size)
            side = ((b - a) // self.tiles) * self.tiles
            if side // self.tiles < 8:
                raise PermanentError(
                    f"ROI {self.roi} at {self.size} px in {self.tiles}x{self.tiles} tiles leaves "
                    "tiles under 8 px; use a larger --size or fewer tiles"
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


def build_net(config: CnnConfig, k: int, present_mask: Sequence[bool]) -> Any:
    torch = _torch()
    nn = torch.nn
    ya, yb, xa, xb = config.roi_pixels()
    t = config.tiles
    w = config.width

    def block(cin: int, cout: int, pool: bool) -> list[Any]:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        return [*layers, nn.MaxPool2d(2)] if pool else layers

    module: Any = nn.Module

    class Net(module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(
                *block(3, w, True),
                *block(w, 2 * w, True),
                *block(2 * w, 4 * w, True),
                *block(4 * w, 4 * w, False),
            )
            self.head = nn.Linear(8 * w, k)
            mask = torch.tensor([0.0 if p else -1e4 for p in present_mask])
            self.register_buffer("mask", mask)

        def forward(self, x: Any) -> Any:
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
            return torch.softmax(self.head(pooled) + self.mask, dim=1)

    return Net()


def augment(x: Any, generator: Any) -> Any:
    """Lighting, angle and scale jitter of a batch [B, 3, S, S] in [0, 1] (torch)."""
    torch = _torch()
    f = torch.nn.functional
    b = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> Any:
        return lo + (hi - lo) * torch.rand(b, *shape, generator=generator)

    angle = u(-math.pi / 12, math.pi / 12) + (
        torch.randint(0, 4, (b,), generator=generator) * (math.pi / 2)
    )
    scale = u(0.8, 1.25)
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
    gain = u(0.6, 1.4, 1, 1, 1) * u(0.85, 1.15, 3, 1, 1)
    gamma = u(0.7, 1.4, 1, 1, 1)
    return (x.clamp(1e-4, 1) ** gamma * gain + u(-0.08, 0.08, 1, 1, 1)).clamp(0, 1)


@dataclass
class FittedCnn:
    onnx: bytes
    seconds: float
    epochs: int


def fit_cnn(
    x: Any, y: Any, classes: Sequence[str], present: Sequence[str], config: CnnConfig
) -> FittedCnn:
    """Train on images `x` [N, 3, S, S] (float32, [0, 1]) with labels `y` (taxonomy indices)."""
    torch = _torch()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    generator = torch.Generator().manual_seed(config.seed)
    k = len(classes)
    net = build_net(config, k, [c in present for c in classes])
    images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    counts = torch.bincount(labels, minlength=k).float()
    weights = (1.0 / counts.clamp(min=1))[labels]
    steps = max(1, math.ceil(len(labels) / config.batch))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=steps * max(1, config.epochs)
    )
    net.train()
    for _ in range(config.epochs):
        order = torch.multinomial(weights, len(labels), replacement=True, generator=generator)
        for s in range(steps):
            idx = order[s * config.batch : (s + 1) * config.batch]
            if len(idx) < 2:
                continue
            batch = images[idx]
            if config.augment:
                batch = augment(batch, generator)
            probs = net(batch)
            loss = torch.nn.functional.nll_loss(torch.log(probs + 1e-7), labels[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    net.eval()
    return FittedCnn(export_onnx(net, config.size), time.perf_counter() - started, config.epochs)


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
