"""A camera's frames against the resolution the fleet declares for it.

The fleet declares each camera's resolution, and the camera's ROI is in those pixels
(`validate` checks that it lies inside). A camera that delivers frames of another size would
have its ROI clipped to whatever part of the frame it still covers, so the device compares
every frame of a camera with an ROI with the declaration (docs/edge.md, "Frame size"; without
an ROI the models see the whole frame at any size, and nothing is checked):

- the same frame at another scale (both sides scaled alike, to within a pixel): the ROI is
  scaled to the frame, so the models see the same part of the scene, and the frame is decided;
- another aspect (a crop, a rotated or another sensor mode): the ROI cannot be placed, so the
  frame is refused (counted as unreadable, never decided).

A frame larger than declared (any size on a camera without an ROI, or a scaled ROI) may also
be cut by a model's tiling into more tiles than `MAX_TILES_PER_FRAME`, which the desired
state's check (`edge_puller.desired`) could only count at the declared size: such a frame is
refused too, naming the count, and never tiled (`within_tiles`).

Either way `problem` says so until the frames match the declaration again: a refused frame in
the report's `error` (`linefleet status`: `Failed`, `DeviceError`: the camera cannot be
inspected), a scaled one in its `warning` (`Degraded`, `DeviceWarning`: it is inspected, not
at the size its line's evaluation evidence was taken at; its sync stays `Synced`).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_puller.target import Roi
from linefleet_core.catalogue import too_many_tiles
from linefleet_core.wire import CameraSpec, LineSpec


@dataclass(frozen=True)
class Fit:
    roi: Roi | None
    """The ROI in the frame's pixels (None: the whole frame)."""
    refused: bool = False
    problem: str = ""
    """Empty when the frame has the declared size."""


def fit(spec: CameraSpec | None, line: str, width: int, height: int) -> Fit:
    """Place `spec`'s ROI on a `width` x `height` frame of its camera (of `line`)."""
    if spec is None or spec.roi is None:
        return Fit(None)  # the models see the whole frame, whatever its size
    roi = (spec.roi[0], spec.roi[1], spec.roi[2], spec.roi[3])
    if (width, height) == (spec.width, spec.height):
        return Fit(roi)
    where = (
        f"frames {spec.id} ({line}): {width}x{height}, the fleet declares "
        f"{spec.width}x{spec.height}"
    )
    sx, sy = width / spec.width, height / spec.height
    if abs(sx - sy) * max(spec.width, spec.height) > 1:
        return Fit(None, refused=True, problem=f"{where} (another aspect): not decided")
    x, y, w, h = roi
    scaled = (
        min(round(x * sx), width - 1),
        min(round(y * sy), height - 1),
        max(1, round(w * sx)),
        max(1, round(h * sy)),
    )
    return Fit(scaled, problem=f"{where}: ROI scaled by {sx:.3g} and decided")


def camera_spec(cameras: list[CameraSpec], camera: str) -> CameraSpec | None:
    return next((c for c in cameras if c.id == camera), None)


def within_tiles(placed: Fit, line: LineSpec | None, camera: str, width: int, height: int) -> Fit:
    """`placed`, or a refusal when a model of `line` would cut what it sees of this
    `width` x `height` frame (the placed ROI, else the whole frame) into too many tiles."""
    if line is None or placed.refused:
        return placed
    seen = (placed.roi[2], placed.roi[3]) if placed.roi is not None else (width, height)
    for model in line.models():
        tiling = model.input.tiling
        many = None if tiling is None else too_many_tiles(*seen, tiling.size, tiling.overlap)
        if many is not None:
            problem = f"frames {camera} ({line.line}): {width}x{height}: {many}: not decided"
            return Fit(None, refused=True, problem=problem)
    return placed
