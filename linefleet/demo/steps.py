"""Steps several stages share: publish, commit a reviewed change, merge a trainer's PR."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linefleet.demo import fleetrepo, history
from linefleet.demo.context import Demo, StageFailed
from linefleet.demo.edges import EdgeAgent, converged, feed_and_wait, wait_for
from linefleet.demo.registry import REPOSITORY

MODEL = "surface-classifier"
TAXONOMY = "surface-defects@2"


@dataclass
class Story:
    """What earlier stages left for later ones."""

    agents: list[EdgeAgent] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    batches: int = 0

    def batch(self, name: str) -> str:
        self.batches += 1
        return f"{self.batches:02d}{name}"


def publish(demo: Demo) -> None:
    assert demo.signing_key is not None
    demo.lf(
        "publish", "--broker", demo.broker_url, "--repo", str(demo.repo),
        "--signing-key", str(demo.signing_key), "--refuse-file-urls", limit=6,
    )  # fmt: skip


def settle(demo: Demo, story: Story, frames: int, name: str, timeout: float = 90.0) -> None:
    """Record the devices' reports so far (their metrics of the frames since the last stage),
    wait until each device runs what git says, then run frames through every agent."""
    history.record(demo)
    wait_for(demo, "devices converged", story.agents, converged, timeout)
    feed_and_wait(demo, story.agents, frames, story.batch(name))


def change(demo: Demo, message: str, edit: Callable[[Path], None]) -> str:
    """Edit the fleet, commit, check it as CI would (validate + plan against the parent), push,
    and publish. Returns the commit."""
    edit(demo.repo)
    commit = fleetrepo.commit_and_push(demo.repo, message)
    demo.console.note(f"committed {commit[:12]}: {message}")
    demo.lf("validate", "--repo", str(demo.repo), "--base", "HEAD~1", limit=4)
    demo.lf("plan", "--repo", str(demo.repo), "--base", "HEAD~1", "--format", "text", limit=14)
    publish(demo)
    return commit


def train(demo: Demo) -> str:
    """`linefleet train` on the current labels; returns the MLflow run id."""
    args = ("--state", str(demo.trainer), "--fleet-repo", str(demo.repo))
    demo.console.command(["linefleet", "train", "--model", MODEL, "--taxonomy", TAXONOMY, "..."])
    began = time.monotonic()
    # The features backend at 64 px: the simulator's defects are large, and it keeps the demo's
    # training and the devices' inference fast (`--size auto` would take 128 px frames at 128).
    doc: dict[str, Any] = demo.lf_json(
        "train", *args, "--model", MODEL, "--taxonomy", TAXONOMY, "--format", "json",
        "--backend", "features", "--size", "64",
    )  # fmt: skip
    holdout = doc["holdout"]
    demo.console.output(
        "\n".join(
            [
                f"MLflow run {doc['run_id']}, dataset {doc['dataset'][:12]}",
                f"holdout accuracy {holdout['accuracy']:.1%} on {holdout['frames']} frames",
                *(
                    f"{line}: {m['accuracy']:.1%} on {m['frames']} frames"
                    for line, m in sorted(doc["lines"].items())
                ),
                f"({time.monotonic() - began:.0f} s)",
            ]
        )
    )
    run_id: str = doc["run_id"]
    return run_id


def promote_and_merge(demo: Demo, run_id: str) -> int:
    """The trainer opens a promotion PR; CI's checks run on it (plan); a reviewer merges it."""
    demo.lf(
        "trainer", "promote", "--state", str(demo.trainer), "--fleet-repo", str(demo.repo),
        "--run", run_id, "--forge", "local",
        "--push", f"oci://{demo.registry}/{REPOSITORY}", limit=6,
    )  # fmt: skip
    pulls = demo.lf_json("pr", "list", "--repo", str(demo.repo), "--format", "json")
    open_pulls = [p for p in _pull_list(pulls) if p["state"] == "open"]
    if not open_pulls:
        raise StageFailed("the trainer opened no pull request", str(pulls))
    pull = max(open_pulls, key=lambda p: int(p["number"]))
    number = int(pull["number"])
    fleetrepo.fetch(demo.repo)
    demo.lf(
        "plan", "--repo", str(demo.repo), "--base", "origin/main",
        "--head", f"origin/{pull['head']}", "--format", "text", limit=14,
    )  # fmt: skip
    demo.lf("pr", "merge", str(number), "--repo", str(demo.repo), limit=3)
    fleetrepo.pull(demo.repo)
    demo.record.setdefault("merged_pulls", []).append(number)
    return number


def _pull_list(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict):
        for key in ("pulls", "pull_requests", "items"):
            if isinstance(doc.get(key), list):
                return list(doc[key])
    if isinstance(doc, list):
        return doc
    raise StageFailed("`linefleet pr list --format json`: unexpected shape", str(doc)[:400])
