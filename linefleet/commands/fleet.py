"""`linefleet fleet generate`: write a complete, valid fleet repository of any size."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet_core.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from factory_sim.fleetgen import FleetShape


@dataclass(frozen=True)
class GenerateArgs:
    out: Path
    sites: int
    lines_per_site: int
    cameras_per_line: int
    devices_per_site: int | None
    seed: int
    force: bool
    git: bool


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fleet", help="tools for whole fleet repositories")
    fleet_sub = p.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    g = fleet_sub.add_parser(
        "generate",
        help="write a complete, valid fleet repository (for benchmarks, tests and demos)",
        description="Write taxonomies, the model catalogue with real tiny ONNX artifacts, the "
        "policy, sites, lines and edge devices. Deterministic for a seed.",
    )
    g.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to create")
    g.add_argument("--sites", type=_positive, default=3, metavar="N", help="default: 3")
    g.add_argument("--lines-per-site", type=_positive, default=4, metavar="M", help="default: 4")
    g.add_argument("--cameras-per-line", type=_positive, default=3, metavar="K", help="default: 3")
    g.add_argument(
        "--devices-per-site",
        type=_positive,
        metavar="D",
        help="edge devices per site, each serving whole lines (default: one per 4 lines)",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="varies cameras and rollout stages (default: 0)"
    )
    g.add_argument("--force", action="store_true", help="replace the fleet in a non-empty --out")
    g.add_argument(
        "--git",
        action="store_true",
        help="initialise a git repository and commit (with the .gitignore `linefleet init` writes)",
    )
    g.set_defaults(run=run_generate)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def run_generate(ns: argparse.Namespace) -> int:
    from factory_sim import fleetgen
    from linefleet_core.fleetschema import schema_documents

    args = GenerateArgs(
        ns.out,
        ns.sites,
        ns.lines_per_site,
        ns.cameras_per_line,
        ns.devices_per_site,
        ns.seed,
        ns.force,
        ns.git,
    )
    try:
        shape = fleetgen.FleetShape(
            args.sites, args.lines_per_site, args.cameras_per_line, args.devices_per_site, args.seed
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    files = fleetgen.generate(shape)
    files.update({f"schema/{name}": text.encode() for name, text in schema_documents().items()})
    try:
        fleetgen.write(files, args.out, force=args.force)
    except OSError as exc:
        reason = f"{exc.strerror}: {exc.filename}" if exc.strerror else str(exc)
        raise UsageError(f"--out {args.out}: {reason}") from None
    if args.git:
        _commit(args.out, shape)
    lines = shape.sites * shape.lines_per_site
    print(
        f"wrote {len(files)} files to {args.out}: {shape.sites} site(s), {lines} line(s), "
        f"{lines * shape.cameras_per_line} camera(s), {shape.sites * shape.devices} device(s)",
        file=sys.stdout,
    )
    return int(ExitCode.OK)


def _commit(out: Path, shape: FleetShape) -> None:
    import git

    from linefleet.scaffold.templates import GITIGNORE

    repo = git.Repo(out) if (out / ".git").exists() else git.Repo.init(out, initial_branch="main")
    ignore = out / ".gitignore"
    if not ignore.exists():  # as `linefleet init` writes: keys and commands' local state stay out
        ignore.write_text(GITIGNORE, encoding="utf-8")
    with repo.config_writer() as config:
        if not config.has_option("user", "name"):
            config.set_value("user", "name", "linefleet generator")
            config.set_value("user", "email", "generator@linefleet.invalid")
    repo.git.add("--all", "fleet", "taxonomies", "schema", ".gitignore")
    repo.index.commit(
        f"Generate fleet: {shape.sites} sites x {shape.lines_per_site} lines x "
        f"{shape.cameras_per_line} cameras (seed {shape.seed})"
    )
