"""`linefleet demo`: the whole loop on one machine (`make demo`). Exit 0 done, 1 a stage failed
(the message names it), 2 usage, 130 interrupted (every process it started is stopped)."""

from __future__ import annotations

import argparse
from pathlib import Path

from linefleet_core.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole loop on this machine: broker, git, training, edge devices, rollout",
        description="Start a private Mosquitto, create a fleet repository with a bare origin, "
        "generate frames, train and promote models through pull requests, run edge agents for "
        "three lines, walk one line to production and roll a regression back. Everything lives "
        "in --state-dir, which is wiped at the start of each run. Ctrl-C stops every process "
        "the demo started.",
    )
    p.add_argument("--state-dir", type=Path, default=Path(".demo"), help="default: .demo")
    p.add_argument("--quick", action="store_true", help="fewer frames (for tests and a first look)")
    p.add_argument("--frames", type=int, help="frames per camera (default 60, --quick 30)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic frames")
    p.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    from linefleet.demo import Options, run_demo

    frames = ns.frames if ns.frames is not None else (30 if ns.quick else 60)
    if frames < 10:
        raise UsageError(f"--frames must be at least 10, got {frames}")
    if ns.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {ns.seed}")
    return run_demo(Options(ns.state_dir, quick=ns.quick, frames_per_camera=frames, seed=ns.seed))
