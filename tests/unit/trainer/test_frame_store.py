from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from linefleet_core.errors import UsageError
from tests.support.trainer_data import png
from trainer.frames import FrameStore, UnreadableFrame


def test_put_names_the_file_by_sha256_and_is_idempotent(frames: FrameStore) -> None:
    data = png(1)
    sha = frames.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert frames.path(sha).read_bytes() == data
    assert frames.put(data) == sha
    assert sha in frames
    assert frames.load(sha).shape == (32, 32, 3)
    assert [p.name for p in frames.root.rglob("*") if p.is_file()] == [sha]


@pytest.mark.parametrize("data", [b"", b"not an image at all", png(2)[:40]])
def test_unreadable_frames_are_refused_and_nothing_is_written(
    frames: FrameStore, data: bytes
) -> None:
    with pytest.raises(UnreadableFrame, match=r"upload\.png"):
        frames.put(data, "upload.png")
    assert not frames.root.exists() or not any(frames.root.rglob("*"))


def test_missing_frame_and_bad_id_are_clear_errors(frames: FrameStore, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not in the frame store"):
        frames.read("a" * 64)
    with pytest.raises(UsageError, match="not a sha256"):
        frames.path("../../etc/passwd")
    with pytest.raises(UsageError, match="cannot read"):
        frames.put_file(tmp_path / "missing.png")
