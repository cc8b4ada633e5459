"""Image bytes to the frame every part works on: BGR, uint8, H x W x 3.

    image = decode_image(data)      # None when OpenCV cannot read it

The trainer (label imports, the frame store) and the edge (a frames folder) decode through
this one function, so a model sees on the device the pixels it was trained on.

What plant cameras write, and how it is read:
- 8-bit grey or colour (PNG, JPEG, BMP, TIFF, WebP): grey is repeated into three channels, an
  alpha channel is dropped, a JPEG's EXIF orientation is applied (OpenCV's `IMREAD_COLOR`).
- 16-bit PNG/TIFF: scaled to 8 bits by the depth its values use, not always by 16: 12
  bits when the frame's largest value fits in 12 bits, else 16. A 12-bit sensor
  stored in the low bits of a 16-bit file (what most machine-vision SDKs write) thus keeps its
  contrast, where OpenCV's own conversion (a shift by 8) left it at 0-15: a black frame, a
  defect of a few grey levels gone. A file scaled to the full 16 bits (as the PNG standard
  asks, with or without `sBIT`) is shifted by 8 as before. A 16-bit frame darker than 1/16 of
  its range is read as a 12-bit one, i.e. brighter; 10- and 14-bit data keep 6 bits. (Finer
  steps, 10 and 14 as well, would change one camera's gain between its dim and bright frames.)
- Anything OpenCV refuses (empty, truncated, not an image, a header declaring more pixels than
  OpenCV's limit) is None, never an exception: the caller names the file.
- Only those five formats are decoded, recognised by their content (a `.png` that holds a GIF
  is a GIF), whatever the file is called. The other formats OpenCV reads (GIF, JPEG 2000, AVIF,
  Radiance HDR, PFM, PNM, Sun raster, BigTIFF) are None: their header's size is not checked
  here, and a 54-byte GIF declaring 12,000 x 12,000 pixels took 1.1 GB to refuse.
- A file larger than MAX_FILE_BYTES is not read at all (`read_image_file`, for a label
  import and the edge's frames folder): its size is checked before a byte is read, where the
  pixel count of its header could only be checked after the whole file was in memory.
- A header declaring more than MAX_PIXELS (PNG, JPEG, BMP, WebP, TIFF: `declared_size` reads
  it without decoding) is None too, before OpenCV allocates anything: a 1 MB PNG of 20,000 x
  20,000 zeros otherwise decodes to 1.2 GB (OpenCV's own limit, 2^30 pixels, is 3 GB a frame).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from linefleet_core.readfile import NotRegular, TooLarge, read_bounded

DEPTHS = (12, 16)
MAX_PIXELS = 1 << 27
"""134 million pixels (e.g. 16,384 x 8,192; 400 MB decoded): above any area-scan camera's frame."""
MAX_FILE_BYTES = 3 * MAX_PIXELS + (1 << 20)
"""385 MiB (403,701,760 bytes): a frame of MAX_PIXELS stored uncompressed in 8-bit colour,
plus 1 MiB of headers and metadata. A 16-bit colour frame that large is not read either: it
would decode above MAX_PIXELS's 400 MB anyway."""


class ImageFileRefused(ValueError):
    """A path that is not read as an image: not a regular file, or larger than MAX_FILE_BYTES
    (the message names the file)."""


def read_image_file(path: Path) -> bytes:
    """The bytes of the image file `path`, its size checked before anything is read, never
    blocking on a named pipe or a device node called `x.png` (`linefleet_core.readfile`).
    Raises `ImageFileRefused`, or `OSError` when the file cannot be read."""
    try:
        return read_bounded(path, MAX_FILE_BYTES)
    except NotRegular:
        raise ImageFileRefused(f"{path}: not a regular file") from None
    except TooLarge as exc:
        size = "grew past that many" if exc.size is None else f"{exc.size:,}"
        raise ImageFileRefused(
            f"{path}: {size} bytes; an image file is read only up to {MAX_FILE_BYTES:,} bytes "
            "(a frame of the pixel limit, uncompressed)"
        ) from None


def significant_bits(image: Any) -> int:
    """The depth a 16-bit frame's values use: the smallest of DEPTHS above its largest value."""
    peak = int(image.max()) if image.size else 0
    return next((bits for bits in DEPTHS if peak < (1 << bits)), 16)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the image's header declares them, read without decoding; None for a
    format this does not read, or a header cut short (`decode_image` refuses both)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"BM":
            if data[14:18] == b"\x0c\x00\x00\x00":  # an OS/2 1.x header: 16-bit sizes
                return struct.unpack("<HH", data[18:22])
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
    except struct.error:  # a header cut short: OpenCV refuses it
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:  # stray bytes before a marker: libjpeg skips them too
            at = data.find(b"\xff", at)
            if at < 0:
                return None
            continue
        marker = data[at + 1]
        if marker == 0xDA:  # a scan before any frame header: not a JPEG libjpeg reads
            return None
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for i in range(min(count, 4096)):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            fmt = "H" if kind == 3 else "I"
            found[tag] = struct.unpack(order + fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def too_many_pixels(data: bytes) -> tuple[int, int] | None:
    """The declared (width, height) when they exceed MAX_PIXELS, else None."""
    size = declared_size(data)
    return size if size is not None and size[0] * size[1] > MAX_PIXELS else None


def decode_image(data: bytes) -> Any | None:
    """BGR uint8 H x W x 3, or None when the bytes are not a PNG, JPEG, BMP, TIFF or WebP
    image OpenCV can read (or declare more than MAX_PIXELS)."""
    import cv2
    import numpy as np

    size = declared_size(data)
    if size is None or size[0] * size[1] > MAX_PIXELS:
        return None
    try:
        image = cv2.imdecode(
            np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
        )
    except cv2.error:  # e.g. a header declaring more than CV_IO_MAX_IMAGE_PIXELS
        return None
    if image is None or image.size == 0:
        return None
    if image.dtype == np.uint16:
        shift = significant_bits(image) - 8
        image = np.clip(np.right_shift(image, shift), 0, 255)
    elif image.dtype != np.uint8:  # a float TIFF: taken as 0..1
        image = np.clip(np.nan_to_num(image.astype(np.float32)) * 255.0 + 0.5, 0, 255)
    if image.ndim == 2:
        image = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
