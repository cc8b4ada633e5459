"""The demo's shared state: its folders, the broker, the processes, and `linefleet` itself.

Every component is driven through its command line (`python -m linefleet ...` in a child
process), exactly as an operator would type it, so the demo checks the real interfaces and
keeps working while their internals change.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linefleet.demo.console import Console
from linefleet.demo.procs import Children, Finished


class StageFailed(Exception):
    """A step went wrong: the message says what, `output` is what the command printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class Skip(Exception):
    """The stage needs a piece that is not built yet."""

    def __init__(self, what: str, issue: int) -> None:
        super().__init__(f"{what} is not built yet (issue {issue})")


@dataclass(frozen=True)
class Options:
    state_dir: Path
    quick: bool = False
    frames_per_camera: int = 60
    seed: int = 7

    @property
    def lines(self) -> tuple[str, ...]:
        return DEMO_LINES


SLOW_SECONDS = 3.0  # commands that take longer say how long
MARKER = ".linefleet-demo"  # marks a state dir the demo made, and may therefore wipe

# The lines the demo runs edge agents for: one per device of the Toledo plant.
DEMO_DEVICES: dict[str, str] = {
    "toledo/stamping-1": "toledo/toledo-press-edge-1",
    "toledo/stamping-3": "toledo/toledo-press-edge-2",
    "toledo/paint-1": "toledo/toledo-paint-edge-1",
}
DEMO_LINES = tuple(DEMO_DEVICES)
WALK_LINE = "toledo/stamping-3"  # the line walked through shadow -> canary -> production
REGRESSION_LINE = "toledo/paint-1"  # the line that gets the bad candidate


@dataclass
class Demo:
    options: Options
    console: Console
    children: Children
    broker_url: str = ""
    registry: str = ""
    """The central OCI registry, `HOST:PORT`."""
    mirror: str = ""
    """Toledo's artifact mirror, `HOST:PORT`."""
    signing_key: Path | None = None
    trust_key: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)

    # folders -------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.options.state_dir.resolve()

    @property
    def repo(self) -> Path:
        return self.root / "fleet"

    @property
    def origin(self) -> Path:
        return self.root / "origin.git"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def trainer(self) -> Path:
        return self.root / "trainer"

    def edge_dir(self, device: str) -> Path:
        return self.root / "edge" / device.replace("/", "__")

    # commands ------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONUNBUFFERED": "1",
            "GIT_AUTHOR_NAME": "linefleet demo",
            "GIT_AUTHOR_EMAIL": "demo@linefleet.invalid",
            "GIT_COMMITTER_NAME": "linefleet demo",
            "GIT_COMMITTER_EMAIL": "demo@linefleet.invalid",
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "linefleet", *args]

    def lf(
        self, *args: str, show: bool = True, limit: int = 12, ok: tuple[int, ...] = (0,)
    ) -> Finished:
        """Run `linefleet ARGS`; a non-zero exit fails the stage with the command's output."""
        if show:
            self.console.command(["linefleet", *args])
        began = time.monotonic()
        done = self.children.run(self.argv(*args), env=self.env())
        seconds = time.monotonic() - began
        if done.returncode not in ok:
            raise StageFailed(
                f"`linefleet {' '.join(args)}` exited with {done.returncode}", done.output
            )
        if show:
            self.console.output(done.output, limit=limit)
            if seconds >= SLOW_SECONDS:
                self.console.note(f"  ({seconds:.0f} s)")
        return done

    def lf_json(self, *args: str) -> Any:
        """Run a `--format json` command quietly and parse its standard output."""
        done = self.children.run(self.argv(*args), env=self.env())
        if done.returncode != 0:
            raise StageFailed(
                f"`linefleet {' '.join(args)}` exited with {done.returncode}", done.output
            )
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise StageFailed(
                f"`linefleet {' '.join(args)}` printed no JSON", done.output
            ) from None

    def has_command(self, *words: str) -> bool:
        """True when `linefleet WORDS --help` works: the piece exists in this checkout."""
        done = self.children.run(self.argv(*words, "--help"), env=self.env(), timeout=60)
        return done.returncode == 0

    def save_record(self) -> bool:
        """`summary.json`: what the demo did, for people and for the acceptance test.
        Written only into a state dir the demo made (never into someone else's folder)."""
        if not (self.root / MARKER).exists():
            return False
        path = self.root / "summary.json"
        path.write_text(json.dumps(self.record, indent=2, sort_keys=True) + "\n")
        return True
