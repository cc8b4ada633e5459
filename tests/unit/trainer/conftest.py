"""Fixtures for the trainer's unit tests: three taxonomy versions, a label store, frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from linefleet_core.taxonomy import Taxonomy
from tests.support.trainer_data import png, taxonomies
from trainer.frames import FrameStore
from trainer.store import LabelStore


@pytest.fixture
def taxes() -> dict[str, Taxonomy]:
    return taxonomies()


@pytest.fixture
def frames(tmp_path: Path) -> FrameStore:
    return FrameStore(tmp_path / "frames")


@pytest.fixture
def store(tmp_path: Path, taxes: dict[str, Taxonomy]) -> Iterator[LabelStore]:
    s = LabelStore.open(f"sqlite:///{tmp_path / 'labels.db'}", taxes)
    yield s
    s.close()


@pytest.fixture
def frame_ids(store: LabelStore, frames: FrameStore) -> list[str]:
    """Six registered frames: three on toledo/line-1 and three on dresden/line-2."""
    out = []
    for i in range(6):
        sha = frames.put(png(i))
        site, line = ("toledo", "line-1") if i < 3 else ("dresden", "line-2")
        store.register_frame(sha, site, line, "cam-1")
        out.append(sha)
    return out
