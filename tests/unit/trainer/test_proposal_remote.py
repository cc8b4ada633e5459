"""A promotion proposal needs a remote to push its branch to; without one it says how to add it."""

from __future__ import annotations

from pathlib import Path

import pytest
from git import Repo

from linefleet_core.errors import UsageError
from linefleet_forge.local import LocalForge
from trainer.datasets import DatasetVersion
from trainer.frames import FrameStore
from trainer.proposal import PromotionRequest, propose


def test_a_fleet_repo_without_the_remote_is_told_how_to_add_one(tmp_path: Path) -> None:
    """`fleet generate --git` makes no origin: promote said only "Remote named 'origin'
    didn't exist"."""
    Repo.init(tmp_path / "fleet")
    dataset = DatasetVersion("0" * 64, "surface-defects@2", ("ok", "scratch"), ())
    request = PromotionRequest(tmp_path / "fleet", "m", b"", 64, dataset, "run", {})
    with pytest.raises(UsageError, match=r"no git remote 'origin' .*git remote add origin URL"):
        propose(request, LocalForge.for_repo(tmp_path / "fleet"), FrameStore(tmp_path / "f"), {})
