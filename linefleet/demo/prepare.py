"""Stages 1-3: a clean state directory and broker, the fleet repository, camera frames."""

from __future__ import annotations

import shutil
from pathlib import Path

from linefleet.demo import broker, fleetrepo, registry
from linefleet.demo.context import DEMO_LINES, MARKER, Demo, StageFailed
from linefleet.demo.steps import Story

OLD_TAXONOMY_MODEL = "surface-classifier@1"  # classes of surface-defects@1
HEARTBEAT = 5  # seconds between device reports: several report points per stage


def reset_state_dir(path: Path) -> None:
    """Wipe and recreate the state dir; refuse a non-empty folder the demo did not create."""
    if path.exists():
        if any(path.iterdir()) and not (path / MARKER).exists():
            raise StageFailed(
                f"{path} is not empty and was not made by `linefleet demo`; "
                "choose another --state-dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by `linefleet demo`; wiped on every run\n")


def state_and_broker(demo: Demo, story: Story) -> None:
    reset_state_dir(demo.root)
    demo.console.ok(f"state directory {demo.root} (wiped and recreated)")
    demo.broker_url = broker.start(demo.children, demo.root / "broker")
    demo.record["broker"] = demo.broker_url
    demo.console.ok(f"Mosquitto listening on {demo.broker_url} (loopback only)")
    registry.start_central(demo)


def fleet_repository(demo: Demo, story: Story) -> None:
    example = Path(__file__).resolve().parents[2]
    if not (example / "fleet" / "sites" / "toledo").is_dir():
        raise StageFailed(f"no example fleet under {example}/fleet (run from a linefleet clone)")
    fleetrepo.create(example, demo.repo, demo.origin)
    demo.console.ok(f"{demo.repo} with origin {demo.origin} and the local forge")
    _demo_settings(demo)
    registry.move_models_to_registry(demo, "toledo")
    registry.start_mirror(demo, "toledo")
    demo.lf("validate", "--repo", str(demo.repo), limit=4)


def _demo_settings(demo: Demo) -> None:
    """The example fleet, cut down to Toledo and a small dataset; each change is printed."""
    holdout = max(5, demo.options.frames_per_camera // 5)
    was = fleetrepo.set_min_holdout_frames(demo.repo, holdout)
    heartbeat = fleetrepo.set_heartbeat(demo.repo, HEARTBEAT)
    dropped = []
    for line in _toledo_lines(demo.repo):
        if fleetrepo.rollout(demo.repo, line).get("previous") == OLD_TAXONOMY_MODEL:
            fleetrepo.set_rollout(demo.repo, line, previous=None)
            dropped.append(line)
    evidence = sum(
        fleetrepo.keep_evidence_of(demo.repo, p.stem, "toledo")
        for p in sorted((demo.repo / "fleet" / "models").glob("*.yaml"))
    )
    demo.lf("codeowners", "--repo", str(demo.repo), limit=3)
    commit = fleetrepo.commit_and_push(
        demo.repo,
        f"Demo settings: min_holdout_frames {holdout}; heartbeat {HEARTBEAT} s; "
        "no surface-defects@1 rollback targets",
    )
    demo.console.note(f"committed {commit[:12]}: the example fleet, adjusted for one machine:")
    demo.console.output(
        f"policy min_holdout_frames {was} -> {holdout}, no floors, no interval width (the "
        "demo's dataset is small)\n"
        f"policy heartbeat_seconds {heartbeat} -> {HEARTBEAT} (devices report often enough "
        "for the report's charts to show each stage)\n"
        f"rollback target {OLD_TAXONOMY_MODEL} removed from {len(dropped)} line(s): it speaks "
        "surface-defects@1, the lines @2, and the edge refuses such a desired state\n"
        f"{evidence} catalogue evidence entries for lines outside Toledo removed"
    )


def _toledo_lines(repo: Path) -> list[str]:
    folder = repo / "fleet" / "sites" / "toledo" / "lines"
    return sorted(f"toledo/{p.stem}" for p in folder.glob("*.yaml"))


def camera_frames(demo: Demo, story: Story) -> None:
    frames = str(demo.options.frames_per_camera)
    demo.lf(
        "data", "generate", "--out", str(demo.data), "--fleet", str(demo.repo),
        "--select", *DEMO_LINES, "--frames", frames, "--seed", str(demo.options.seed),
        "--quiet", limit=4,
    )  # fmt: skip
