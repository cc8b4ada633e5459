"""The content-addressed frame store: every frame is a file named by the sha256 of its bytes.

    store = FrameStore(Path("state/frames"))
    sha = store.put(png_bytes)          # refuses bytes OpenCV cannot decode
    image = store.load(sha)             # BGR uint8, as the edge decodes it

Frames are written once (temp file, fsync, rename) and never change: the same bytes always
land at the same path, so adding a frame twice is a no-op and a dataset version can name its
frames by hash alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core.errors import PermanentError, UsageError
from linefleet_core.imagefile import (
    MAX_PIXELS,
    ImageFileRefused,
    decode_image,
    read_image_file,
    too_many_pixels,
)

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UnreadableFrame(PermanentError):
    """The bytes are not an image OpenCV can decode (truncated, wrong format, empty)."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, where: str) -> Any:
    """Decode image bytes to a BGR uint8 array, or raise `UnreadableFrame` naming `where`.

    Grey, 16-bit and colour frames are read as the edge reads them
    (`linefleet_core.imagefile.decode_image`)."""
    if not data:
        raise UnreadableFrame(f"{where}: empty file, not an image")
    if (size := too_many_pixels(data)) is not None:
        raise UnreadableFrame(
            f"{where}: its header declares {size[0]:,} x {size[1]:,} pixels; at most "
            f"{MAX_PIXELS:,} are read (a decompression bomb, or a frame to tile before import)"
        )
    image = decode_image(data)
    if image is None:
        raise UnreadableFrame(
            f"{where}: not a PNG, JPEG, BMP, TIFF or WebP image OpenCV can read (by its "
            "content, whatever its name; truncated, or another format such as GIF)"
        )
    return image


@dataclass(frozen=True)
class FrameStore:
    root: Path

    def path(self, sha: str) -> Path:
        if not SHA256.match(sha):
            raise UsageError(f"{sha!r} is not a sha256 frame id (64 lower-case hex digits)")
        return self.root / sha[:2] / sha

    def __contains__(self, sha: object) -> bool:
        return isinstance(sha, str) and bool(SHA256.match(sha)) and self.path(sha).is_file()

    def put(self, data: bytes, where: str = "frame") -> str:
        """Store `data` (after checking it decodes) and return its sha256."""
        decode(data, where)
        sha = sha256_of(data)
        target = self.path(sha)
        if target.is_file():
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def put_file(self, path: Path) -> str:
        try:
            data = read_image_file(path)
        except ImageFileRefused as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
        return self.put(data, str(path))

    def read(self, sha: str) -> bytes:
        try:
            return self.path(sha).read_bytes()
        except FileNotFoundError:
            raise UsageError(f"frame {sha[:12]} is not in the frame store {self.root}") from None

    def load(self, sha: str) -> Any:
        """The frame as a BGR uint8 array."""
        return decode(self.read(sha), f"frame {sha[:12]}")
