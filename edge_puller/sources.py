"""The device's sources file: which frame source each camera is read from (`edge run --sources`).

A small YAML file kept on the device (it names local folders, USB indices and stream URLs,
which are the device's business, not the fleet's):

```yaml
cameras:
  hem-left: /var/lib/linefleet/frames/hem-left   # a folder of images (watched for new files)
  outer-skin: rtsp://127.0.0.1:8554/outer-skin   # an RTSP stream (OpenCV VideoCapture)
  roof: 0                                        # a USB camera index
  tunnel: /data/tunnel.mp4                       # a video file
queue_frames: 4                                  # optional: frames held per camera (default 4)
```

`read_sources` returns the parsed file or raises `UsageError` with every problem located as
`FILE:line:col: field: message`. `check_cameras` compares the camera ids with the cameras of the
lines a desired state gives the device (pure).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from linefleet_core.errors import UsageError
from linefleet_core.readfile import NotRegular, TooLarge, read_bounded
from linefleet_core.refs import ID_PATTERN
from linefleet_core.yamlsafe import MAX_FILE_BYTES, YamlProblem, load

SourceKind = Literal["folder", "video", "stream", "usb"]
DEFAULT_QUEUE_FRAMES = 4
MAX_QUEUE_FRAMES = 256
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"}


@dataclass(frozen=True)
class Source:
    camera: str
    location: str
    kind: SourceKind


@dataclass(frozen=True)
class Sources:
    path: str
    cameras: dict[str, Source]
    queue_frames: int = DEFAULT_QUEUE_FRAMES


def classify(location: str) -> SourceKind:
    """What kind of source a location names (no I/O beyond a stat)."""
    if location.isdigit():
        return "usb"
    if location.lower().startswith(STREAM_SCHEMES):
        return "stream"
    if Path(location).suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    return "folder"


def _read_config(path: Path, shown: str) -> bytes:
    """The file's bytes, at most the YAML reader's `MAX_FILE_BYTES`; a FIFO named as the
    sources file cannot hang the agent's start (`linefleet_core.readfile`)."""
    try:
        return read_bounded(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise UsageError(f"--sources {shown}: {exc.strerror or exc}") from None
    except NotRegular:
        raise UsageError(f"--sources {shown}: not a regular file") from None
    except TooLarge:
        raise UsageError(f"--sources {shown}: larger than {MAX_FILE_BYTES:,} bytes") from None


def read_sources(path: Path) -> Sources:
    """Parse and check the sources file; every problem at once, located."""
    shown = str(path)
    raw = _read_config(path, shown)
    try:
        doc = load(shown, raw)
    except YamlProblem as exc:
        raise UsageError(f"{shown}:{exc.line}:{exc.col}: {exc.message}") from None
    problems: list[str] = []

    def problem(where: tuple[str | int, ...], message: str, key: bool = False) -> None:
        line, col = doc.where(where, key=key)
        field = ".".join(str(p) for p in where)
        problems.append(f"{shown}:{line}:{col}: {field}: {message}")

    data = doc.data
    if not isinstance(data, dict):
        raise UsageError(f"{shown}:1:1: expected a mapping with 'cameras'")
    for key in sorted(set(data) - {"cameras", "queue_frames"}):
        problem((key,), "unknown key (expected 'cameras' and optionally 'queue_frames')", True)
    queue = data.get("queue_frames", DEFAULT_QUEUE_FRAMES)
    if type(queue) is not int or not 1 <= queue <= MAX_QUEUE_FRAMES:
        problem(("queue_frames",), f"an integer from 1 to {MAX_QUEUE_FRAMES}, not {queue!r}")
        queue = DEFAULT_QUEUE_FRAMES
    cameras = data.get("cameras")
    found: dict[str, Source] = {}
    if not isinstance(cameras, dict) or not cameras:
        problem(("cameras",), "a mapping of camera id -> source (folder, video, URL, USB index)")
    else:
        for camera, value in cameras.items():
            if not isinstance(camera, str) or not re.fullmatch(ID_PATTERN, camera):
                problem(("cameras", camera), "lower-case letters, digits and dashes only", True)
                continue
            if type(value) is int and value >= 0:
                value = str(value)
            if not isinstance(value, str) or not value.strip():
                problem(
                    ("cameras", camera),
                    f"a folder, a video file, an rtsp:// URL or a USB index, not {value!r}",
                )
                continue
            kind = classify(value)
            if kind == "folder" and not Path(value).is_dir():
                problem(("cameras", camera), f"{value}: no such folder, video file or camera")
                continue
            if kind == "video" and not Path(value).is_file():
                problem(("cameras", camera), f"{value}: no such video file")
                continue
            found[camera] = Source(camera, value, kind)
    if problems:
        raise UsageError("\n".join(problems))
    return Sources(shown, found, queue)


@dataclass(frozen=True)
class CameraCheck:
    """How the sources file and the desired state's cameras line up."""

    unknown: tuple[str, ...]
    """Cameras in the sources file that no line of this device has."""
    without_source: tuple[str, ...]
    """Cameras of the device's lines that the sources file does not name."""

    def problems(self) -> list[str]:
        out = []
        if self.unknown:
            out.append(
                f"sources: camera {', '.join(self.unknown)} is not a camera of any line "
                "this device serves; its frames are not decided"
            )
        if self.without_source:
            out.append(f"sources: no source for camera {', '.join(self.without_source)}")
        return out


def check_cameras(
    sources: Mapping[str, object], lines: Mapping[str, tuple[str, ...]]
) -> CameraCheck:
    """Compare camera ids (pure): `lines` maps each served line to its cameras."""
    wanted = {camera for cameras in lines.values() for camera in cameras}
    return CameraCheck(
        unknown=tuple(sorted(set(sources) - wanted)),
        without_source=tuple(sorted(wanted - set(sources))),
    )


def lines_of(camera: str, lines: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The lines a camera's frames are decided for (a camera may serve several lines)."""
    return sorted(key for key, cameras in lines.items() if camera in cameras)
