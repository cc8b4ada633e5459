"""A labelled synthetic dataset (factory_sim, 2 lines) imported into a trainer workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory_sim.dataset import generate
from tests.support.trainer_data import write_taxonomies
from trainer.imports import import_annotations
from trainer.workspace import Workspace

CLASSES = ["ok", "scratch", "contamination", "spot"]


def labelled_workspace(
    root: Path,
    frames_per_line: int = 80,
    *,
    repo: Path | None = None,
    classes: list[str] = CLASSES,
    taxonomy: str = "surface-defects@1",
    lines: tuple[int, int] = (1, 2),
) -> Workspace:
    if repo is None:
        repo = root / "repo"
        write_taxonomies(repo)
    generate(
        root / "sim",
        taxonomy=classes,
        lines=lines,
        frames_per_line=frames_per_line,
        seed=3,
        defect_rate=0.6,
        size=64,
    )
    ws = Workspace(state=root / "state", fleet_repo=repo)
    store = ws.open_store()
    import_annotations(
        root / "sim" / "manifest.jsonl",
        store,
        ws.frames,
        annotator="sim",
        taxonomy=taxonomy,
    )
    store.close()
    return ws


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return labelled_workspace(tmp_path_factory.mktemp("labelled"))
