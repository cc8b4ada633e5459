"""`linefleet edge run` with a fillable disk, for the soak (run as a child process).

    python -m tests.reliability.edge_child FLOOR_FILE -- edge run --device … --state-dir …

Filling a real disk takes root (a loop device or tmpfs) or gigabytes. Instead this launcher
gives the agent's artifact store a free-space floor read from FLOOR_FILE on every download:
while the file holds N, the store behaves as if N more bytes had to stay free, so writing
`"huge"` there makes the disk "full" (the store raises its own `DiskFullError`, the agent its
own backoff) and deleting the file frees it again. Everything else is the real CLI.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import edge_puller.artifacts as artifacts
from linefleet.cli import main

FULL = 1 << 60


class FillableStore(artifacts.ArtifactStore):
    floor_file: Path

    @property
    def reserve_bytes(self) -> int:
        try:
            text = self.floor_file.read_text().strip()
        except OSError:
            return artifacts.RESERVE_BYTES
        return FULL if text == "full" else int(text or 0)

    @reserve_bytes.setter
    def reserve_bytes(self, _value: int) -> None:
        return


def launch(argv: list[str]) -> int:
    floor, sep, *rest = argv
    if sep != "--":
        raise SystemExit("usage: edge_child FLOOR_FILE -- linefleet arguments…")
    FillableStore.floor_file = Path(floor)
    artifacts.ArtifactStore = FillableStore  # type: ignore[misc]
    import edge_puller.agent as agent

    agent.ArtifactStore = FillableStore  # type: ignore[misc]
    assert shutil.disk_usage(Path(floor).parent).free > 0
    return main(rest)


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
