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
"""

from __future__ import annotations

from typing import Any

DEPTHS = (12, 16)


def significant_bits(image: Any) -> int:
    """The depth a 16-bit frame's values use: the smallest of DEPTHS above its largest value."""
    peak = int(image.max()) if image.size else 0
    return next((bits for bits in DEPTHS if peak < (1 << bits)), 16)


def decode_image(data: bytes) -> Any | None:
    """BGR uint8 H x W x 3, or None when the bytes are not an image OpenCV can read."""
    import cv2
    import numpy as np

    if not data:
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
