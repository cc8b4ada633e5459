"""Frame sources: a directory of images (watched for new files), a video file, or a camera.

Each yields `(frame_id, frame)` with `frame` an 8-bit BGR image as OpenCV decodes it. An
unreadable file is yielded as `(frame_id, None)` so the caller can count and report it; it
never stops inspection. In a folder, a file that does not decode yet and was modified in the
last SETTLE_SECONDS is taken as still being written (a camera or a copy that has not finished)
and read again on a later poll, not counted as unreadable. A directory source keeps watching
for new files until stopped.

Cameras and video files share one capture loop over `cv2.VideoCapture`. A video file is
opened at once (a file OpenCV cannot read is a usage error) and ends with its stream. A
camera is a device that comes and goes (a USB cable): when it cannot be opened or stops
delivering frames, the loop says why through `on_problem`, waits (capped backoff) and opens
it again until stopped, so the agent around it keeps converging and reporting. `on_problem`
is called once per change of the message, with `""` when frames flow again.

A capture has the still images' pixel limit (`linefleet_core.imagefile.MAX_PIXELS`, 2^27): a
video or stream whose declared width x height is above it is refused before a frame is read,
and so is a decoded frame above it (a stream changing resolution, or declaring none). A
misconfigured or hostile stream declaring 16,384 x 8,193 pixels would otherwise cost 400 MB
a frame, times the camera's queue. The refusal is said through `on_problem` (the report's
`error`); a video file then ends, a camera or stream is reopened with backoff (it may be
reconfigured). `--frames` refuses a video declaring too many pixels at start (exit 2).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge_puller.runtime import Frame
from linefleet_core.backoff import Backoff
from linefleet_core.errors import UsageError
from linefleet_core.imagefile import MAX_PIXELS, ImageFileRefused, decode_image, read_image_file
from linefleet_core.text import printable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"}
POLL_SECONDS = 0.2
SETTLE_SECONDS = 2.0  # an unreadable file younger than this may still be being written
CAMERA_RETRY_CAP = 10.0
log = logging.getLogger("linefleet.edge")

Frames = Iterator[tuple[str, Frame | None]]
ProblemSink = Callable[[str], None]


def _ignore(_message: str) -> None:
    return None


def shown(device: int | str) -> str:
    """How a capture is named in logs and reports: a stream URL's password (`rtsp://user:
    secret@host/...`, as many IP cameras want it) is written `***`: the report travels over
    MQTT and `linefleet status` prints it."""
    if isinstance(device, int):
        return repr(device)
    try:
        parts = urlsplit(device)
        secret = parts.password
    except ValueError:  # (not a URL a password could be read from)
        return repr(device)
    if secret is None:
        return repr(device)
    host = parts.netloc.rpartition("@")[2]
    return repr(parts._replace(netloc=f"{parts.username}:***@{host}").geturl())


def open_source(source: str, stop: threading.Event, on_problem: ProblemSink = _ignore) -> Frames:
    """The frames of SOURCE: a directory, a video file or a camera index."""
    if source.isdigit():
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # no warning per retry
        return capture_loop(int(source), f"camera{source}", stop, on_problem, reopen=True)
    path = Path(source)
    if path.is_dir():
        return _directory(path, stop)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        video = cv2.VideoCapture(str(path))
        if not video.isOpened():
            video.release()
            raise UsageError(f"--frames {source}: OpenCV cannot read this video file")
        if refused := over_limit("declares", _declared(video)):
            video.release()
            raise UsageError(f"--frames {source}: {refused}")
        return capture_loop(str(path), path.stem, stop, on_problem, reopen=False, opened=video)
    if path.is_file():
        raise UsageError(
            f"--frames {source}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))})"
        )
    raise UsageError(f"--frames {source}: no such directory, video file or camera index")


def open_camera(
    kind: str, location: str, camera: str, stop: threading.Event, on_problem: ProblemSink
) -> Frames:
    """The frames of one camera of a sources file (`edge_puller/sources.py`), named after it:
    `<camera>/<file>` for a folder, `<camera>-<n>` for a capture. Live sources (a USB index, a
    stream URL) are reopened with backoff when they stop; a video file ends with its stream."""
    if kind == "folder":
        return _directory(Path(location), stop, on_problem, prefix=f"{camera}/")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # no warning per retry
    device: int | str = int(location) if kind == "usb" else location
    return capture_loop(device, camera, stop, on_problem, reopen=kind != "video")


def _declared(capture: cv2.VideoCapture) -> tuple[int, int]:
    """(width, height) as the capture declares them; 0 when it does not say."""
    return int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))


def over_limit(what: str, size: tuple[int, int], max_pixels: int = MAX_PIXELS) -> str:
    """Why a capture's frames of `size` (width, height) are refused, or "" within the limit."""
    width, height = size
    if width * height <= max_pixels:
        return ""
    return (
        f"{what} {width:,} x {height:,} pixels, above the limit of {max_pixels:,} a frame "
        "(as for still images); refused"
    )


def _load(path: Path) -> tuple[Frame | None, str]:
    """The frame as the trainer read its training frames (`linefleet_core.imagefile`), or
    None and why it was refused unread ("" for a file that does not decode).
    Only a regular file (or a link to one) of at most `MAX_FILE_BYTES` is read: a named pipe
    or a device node called `x.png` would block the capture loop for ever, a 2 GB file would be
    read whole before its header is checked; either is unreadable (the folder loop logs it by
    name, once the file has settled)."""
    try:
        data = read_image_file(path)
    except OSError:
        return None, ""
    except ImageFileRefused as exc:
        return None, str(exc)
    image = decode_image(data)
    return (None if image is None else np.asarray(image, dtype=np.uint8)), ""


def frame_name(name: str) -> str:
    """A file's name as its frame id: a byte that is not UTF-8 (a name written by a Windows
    share in Latin-1, `b\\xff.png`) is written `\\xff`, as `ls -b` does. Python keeps such a
    byte as a lone surrogate, which no UTF-8 text can hold: the first one reached the canary
    split's hash and stopped the agent (exit 3) on every start, the file still there."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _still_written(path: Path, now: float | None = None) -> bool:
    """Whether `path` was modified in the last SETTLE_SECONDS (a file gone counts as settled)."""
    try:
        modified = path.stat().st_mtime
    except OSError:
        return False
    return (time.time() if now is None else now) - modified < SETTLE_SECONDS


def _directory(
    folder: Path,
    stop: threading.Event,
    on_problem: ProblemSink = _ignore,
    prefix: str = "",
    backoff: Backoff | None = None,
) -> Frames:
    """Images of `folder` in name order, then new ones as they appear. A folder that goes away
    (an unmounted share) is reported through `on_problem` and looked for again with backoff."""
    retry = backoff or Backoff(base=POLL_SECONDS, cap=CAMERA_RETRY_CAP)
    seen: set[str] = set()
    problem = ""
    while not stop.is_set():
        try:
            names = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        except OSError as exc:
            name = prefix.rstrip("/") or folder
            message = f"frames {name}: {folder}: {exc.strerror or exc}; retrying"
            if message != problem:
                log.warning("%s", message)
                problem = message
                on_problem(message)
            stop.wait(retry.next())
            continue
        if problem:
            problem = ""
            retry.reset()
            on_problem("")
        fresh = sorted(p for p in names if p.name not in seen)
        waiting = 0
        for path in fresh:
            if stop.is_set():
                return
            image, refused = _load(path)
            if image is None and _still_written(path):
                waiting += 1  # looked at again on the next poll (and said nothing yet)
                continue
            if refused:
                log.warning("frames folder: %s; counted as unreadable", printable(refused))
            seen.add(path.name)
            yield prefix + frame_name(path.name), image
        if len(fresh) == waiting:
            stop.wait(POLL_SECONDS)


def capture_loop(
    device: int | str,
    name: str,
    stop: threading.Event,
    on_problem: ProblemSink = _ignore,
    *,
    reopen: bool,
    opened: cv2.VideoCapture | None = None,
    backoff: Backoff | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Frames:
    """Frames read from `cv2.VideoCapture(device)`, named `<name>-<n>` (n counts on across
    reopenings). With `reopen` (a camera), a failed open or read is reported and retried until
    `stop`; without it (a video file), the loop ends when the stream does. A capture declaring
    more than `max_pixels` a frame, or a frame decoded larger, is refused (reported; a video
    ends, a camera is reopened with backoff)."""
    retry = backoff or Backoff(base=1.0, cap=CAMERA_RETRY_CAP)
    capture = opened
    checked = False  # the declared size, once per opening
    problem = ""
    index = 0

    def trouble(message: str) -> None:
        nonlocal problem
        if message != problem:
            if message:
                log.warning("%s", message)
            else:
                log.info("frames %s: frames are coming in again", name)
            problem = message
            on_problem(message)

    try:
        while not stop.is_set():
            if capture is None:
                capture = cv2.VideoCapture(device)
                if not capture.isOpened():
                    capture.release()
                    capture = None
                    trouble(f"frames {name}: OpenCV cannot open {shown(device)}; retrying")
                    stop.wait(retry.next())
                    continue
                checked = False
            refused = "" if checked else over_limit("declares", _declared(capture), max_pixels)
            checked = True
            ok, frame = (False, None) if refused else capture.read()
            if ok and frame is not None:
                size = (frame.shape[1], frame.shape[0])
                refused = over_limit("delivered a frame of", size, max_pixels)
            if refused or not ok or frame is None:
                capture.release()
                capture = None
                if refused:
                    trouble(
                        f"frames {name}: {shown(device)} {refused}"
                        + ("; retrying" if reopen else "")
                    )
                if not reopen:
                    return
                if not refused:
                    trouble(f"frames {name}: {shown(device)} stopped delivering frames; reopening")
                stop.wait(retry.next())
                continue
            if problem:
                trouble("")
                retry.reset()
            index += 1
            yield f"{name}-{index:08d}", np.asarray(frame, dtype=np.uint8)
    finally:
        if capture is not None:
            capture.release()
