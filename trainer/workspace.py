"""Where the trainer keeps its state, and the fleet repository it reads taxonomies from.

ws = Workspace(state=Path(".linefleet/trainer"), fleet_repo=Path("."))
store = ws.open_store()            # labels (SQLite under state/ unless --labels URL)
ws.frames                          # the content-addressed frame store (state/frames)
ws.datasets                        # dataset manifests (state/datasets)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from linefleet_core.errors import FindingsError, Severity, UsageError
from linefleet_core.spec import TAXONOMY_DIR, DirectorySource, load
from linefleet_core.taxonomy import Taxonomy
from trainer.frames import FrameStore
from trainer.store import LabelStore, default_url


def load_taxonomies(fleet_repo: Path) -> dict[str, Taxonomy]:
    """Every taxonomy version of the fleet repo; an error naming the file if one is invalid."""
    if not (fleet_repo / TAXONOMY_DIR).is_dir():
        raise UsageError(f"{fleet_repo}: no {TAXONOMY_DIR}/ folder (is --fleet-repo right?)")
    spec, findings = load(DirectorySource(fleet_repo))
    bad = [
        f
        for f in findings
        if f.severity is Severity.ERROR and f.path.startswith(f"{TAXONOMY_DIR}/")
    ]
    if bad:
        raise FindingsError(bad)
    return dict(spec.taxonomies)


@dataclass(frozen=True)
class Workspace:
    state: Path
    fleet_repo: Path
    labels_url: str | None = None

    @property
    def frames(self) -> FrameStore:
        return FrameStore(self.state / "frames")

    @property
    def datasets(self) -> Path:
        return self.state / "datasets"

    @property
    def url(self) -> str:
        return self.labels_url or default_url(self.state)

    def taxonomies(self) -> dict[str, Taxonomy]:
        return load_taxonomies(self.fleet_repo)

    def open_store(self, existing: bool = False) -> LabelStore:
        """The label store; with `existing` (commands that only read or act on what is there),
        a SQLite store that does not exist yet is an error naming `--state` rather than an
        empty store created at a mistyped path."""
        taxonomies = self.taxonomies()  # a wrong --fleet-repo is named first
        if existing and self.labels_url is None:
            path = Path(self.url.removeprefix("sqlite:///"))
            if not path.is_file():
                raise UsageError(
                    f"no label store at {path} (is --state right? `linefleet labels import` "
                    "or `labels ingest-events` creates it)"
                )
        return LabelStore.open(self.url, taxonomies)
