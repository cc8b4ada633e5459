"""What plant cameras write, decoded the same way by the trainer and the edge."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.frames import _read_image
from linefleet_core.imagefile import decode_image
from trainer.frames import UnreadableFrame, decode


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _surface(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(90, 170, (40, 120)).astype(np.uint8)  # non-square, grey


def test_grey_8_bit_is_three_equal_channels_of_the_same_values() -> None:
    grey = _surface()
    image = decode_image(_png(grey))
    assert image is not None and image.shape == (40, 120, 3) and image.dtype == np.uint8
    assert all(np.array_equal(image[:, :, c], grey) for c in range(3))


def test_12_bit_data_in_a_16_bit_png_keeps_its_contrast() -> None:
    grey = _surface()
    image = decode_image(_png(grey.astype(np.uint16) * 16))  # 0..4095: a 12-bit sensor
    assert image is not None
    assert np.array_equal(image[:, :, 0], grey)  # OpenCV's own shift by 8 gave 5..10


def test_full_range_16_bit_is_shifted_by_8() -> None:
    grey = _surface()
    image = decode_image(_png(grey.astype(np.uint16) * 257))
    assert image is not None and np.array_equal(image[:, :, 1], grey)


def test_colour_jpeg_stays_bgr() -> None:
    bgr = np.zeros((30, 50, 3), np.uint8)
    bgr[:, :, 2] = 200  # red
    _, buf = cv2.imencode(".jpg", bgr)
    image = decode_image(buf.tobytes())
    assert image is not None and image[:, :, 2].mean() > 190 and image[:, :, 0].mean() < 10


def _huge_header_png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image\n", _png(_surface())[:60], _huge_header_png()],
    ids=["empty", "text", "truncated", "60000x60000 header"],
)
def test_hostile_files_are_none_here_and_a_named_error_in_the_trainer(data: bytes) -> None:
    assert decode_image(data) is None
    with pytest.raises(UnreadableFrame, match=r"cam-1/x\.png"):
        decode(data, "cam-1/x.png")


def test_the_edge_reads_a_frame_as_the_trainer_does(tmp_path: Path) -> None:
    data = _png(_surface(3).astype(np.uint16) * 16)
    (tmp_path / "f.png").write_bytes(data)
    edge = _read_image(tmp_path / "f.png")
    assert edge is not None and np.array_equal(edge, decode(data, "f.png"))
