"""Fixtures for the trainer's unit tests: three taxonomy versions, a label store, frames.

The `store` fixture runs each test twice: on SQLite (the default) and on a private PostgreSQL
(`tests/support/postgres.py`, one server per session, a fresh database per test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from linefleet_core.taxonomy import Taxonomy
from tests.support.postgres import Postgres, postgres
from tests.support.trainer_data import png, taxonomies
from trainer.frames import FrameStore
from trainer.store import LabelStore


@pytest.fixture
def taxes() -> dict[str, Taxonomy]:
    return taxonomies()


@pytest.fixture
def frames(tmp_path: Path) -> FrameStore:
    return FrameStore(tmp_path / "frames")


__all__ = ["postgres"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty label store database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'labels.db'}"
        return
    server: Postgres = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def store(store_url: str, taxes: dict[str, Taxonomy]) -> Iterator[LabelStore]:
    s = LabelStore.open(store_url, taxes)
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
