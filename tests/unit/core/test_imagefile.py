"""What plant cameras write, decoded the same way by the trainer and the edge."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_puller.frames import _load
from linefleet_core.imagefile import MAX_PIXELS, declared_size, decode_image
from tests.support.trainer_data import gif_declaring
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


def chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _huge_header_png() -> bytes:
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
    edge, refused = _load(tmp_path / "f.png")
    assert refused == "" and edge is not None and np.array_equal(edge, decode(data, "f.png"))


def _bomb_png() -> bytes:
    """A valid 1-bit grey PNG of just over MAX_PIXELS zeros: ~20 KB that OpenCV decodes to
    ~400 MB of BGR (below OpenCV's own limit of 2^30 pixels)."""
    side = int(MAX_PIXELS**0.5) + 1
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    bomb = _bomb_png()
    side = int(MAX_PIXELS**0.5) + 1
    assert len(bomb) < 100_000 and declared_size(bomb) == (side, side)
    assert decode_image(bomb) is None
    with pytest.raises(UnreadableFrame, match=rf"x\.png: its header declares {side:,} x {side:,}"):
        decode(bomb, "x.png")


@pytest.mark.parametrize(
    ("ext", "image", "params"),
    [
        (".png", np.zeros((37, 53, 3), np.uint8), []),
        (".png", np.zeros((37, 53), np.uint16), []),
        (".jpg", np.zeros((37, 53, 3), np.uint8), []),
        (".jpg", np.zeros((37, 53, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".bmp", np.zeros((37, 53, 3), np.uint8), []),
        (".tiff", np.zeros((37, 53), np.uint16), []),
        (".tiff", np.zeros((37, 53, 3), np.float32), []),
        (".webp", np.zeros((37, 53, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 80]),
        (".webp", np.zeros((37, 53, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101]),
        (".webp", np.zeros((37, 53, 4), np.uint8), []),
    ],
)
def test_the_declared_size_is_read_from_every_format_opencv_writes(
    ext: str, image: np.ndarray, params: list[int]
) -> None:
    ok, buf = cv2.imencode(ext, image, params)
    assert ok and declared_size(buf.tobytes()) == (53, 37)
    assert declared_size(buf.tobytes()[:12]) is None  # cut short: OpenCV decides


def test_a_tiny_gif_declaring_a_huge_frame_is_refused_without_decoding() -> None:
    """A GIF (or JPEG 2000, AVIF, HDR: formats OpenCV reads whose size is not checked here)
    is refused by content: the 54 bytes below took 1.1 GB and 1.8 s of CPU to refuse."""
    import resource

    bomb = gif_declaring(12000, 12000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert decode_image(bomb) is None
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
    with pytest.raises(UnreadableFrame, match=r"x\.png: not a PNG, JPEG, BMP, TIFF or WebP"):
        decode(bomb, "x.png")


@pytest.mark.parametrize("ext", [".gif", ".jp2", ".avif", ".hdr", ".ppm", ".ras"])
def test_formats_outside_the_five_are_refused_even_when_opencv_reads_them(ext: str) -> None:
    image = np.full((37, 53, 3), 100, np.uint8)
    ok, buf = cv2.imencode(ext, image.astype(np.float32) / 255 if ext == ".hdr" else image)
    assert ok and cv2.imdecode(buf, cv2.IMREAD_COLOR) is not None
    assert decode_image(buf.tobytes()) is None


def test_an_os2_bitmap_is_read_with_its_16_bit_sizes() -> None:
    """A BITMAPCOREHEADER (12 bytes) stores width and height in 16 bits: read as 32-bit
    values they declared 3,407,925 x 1,572,865 pixels and the frame was refused as a bomb."""
    row = b"\x00\x00\xff" * 53 + b"\x00" * ((4 - 53 * 3 % 4) % 4)
    pixels = row * 37
    info = struct.pack("<IHHHH", 12, 53, 37, 1, 24)
    data = b"BM" + struct.pack("<IHHI", 26 + len(pixels), 0, 0, 26) + info + pixels
    assert declared_size(data) == (53, 37)
    image = decode_image(data)
    assert image is not None and image.shape == (37, 53, 3) and image[:, :, 2].min() == 255


def test_a_jpeg_with_stray_bytes_before_a_marker_is_read_as_libjpeg_reads_it() -> None:
    _, buf = cv2.imencode(".jpg", np.full((37, 53, 3), 80, np.uint8))
    data = buf.tobytes()
    padded = data[:20] + b"\x00\x00" + data[20:]  # after APP0: padding some firmwares write
    assert cv2.imdecode(np.frombuffer(padded, np.uint8), cv2.IMREAD_COLOR) is not None
    image = decode_image(padded)
    assert image is not None and image.shape == (37, 53, 3)
