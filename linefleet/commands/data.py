"""`linefleet data generate` writes a synthetic multi-line dataset (frames + manifest);
`linefleet data summary DIR` shows what one holds.

Lines are either made up (`--sites N --lines M`: toledo/line-1, ...) or taken from a fleet
repository (`--fleet REPO [--select SITE/LINE ...]`: one frame stream per declared camera,
with that camera's lighting, mount angle and conveyor side, labelled with the lines'
taxonomy). Exit 0 written, 1 an unusable taxonomy or fleet file, 2 bad arguments or a
non-empty --out without --force. The format is documented in `factory_sim.manifest`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from linefleet.options import number
from linefleet_core.errors import ExitCode, PermanentError, UsageError, need_directory

if TYPE_CHECKING:
    from linefleet_core.fleet import Line
    from linefleet_core.spec import FleetSpec
    from linefleet_core.taxonomy import Taxonomy


@dataclass(frozen=True)
class GenerateArgs:
    out: Path
    sites: int
    lines: int
    fleet: Path | None
    select: tuple[str, ...]
    frames: int
    seed: int
    taxonomy: str | None
    classes: tuple[str, ...] | None
    repo: Path
    defect_rate: float
    size: int
    drift: tuple[str, ...]
    force: bool
    quiet: bool


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = sub.add_parser("data", help="synthetic factory data", description=__doc__)
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = data_sub.add_parser(
        "generate",
        help="render labelled product-surface frames for several lines",
        description="Render labelled product-surface frames with line-specific lighting, "
        "camera, conveyor and orientation, plus optional drift events. Same seed, same bytes.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--sites", type=int, help="number of made-up sites (default 2)")
    p.add_argument("--lines", type=int, help="made-up lines per site (default 2)")
    p.add_argument("--fleet", type=Path, metavar="REPO", help="use the lines of this fleet repo")
    p.add_argument(
        "--select",
        nargs="+",
        default=[],
        metavar="SITE/LINE",
        help="with --fleet: only these lines (default: every line)",
    )
    p.add_argument(
        "--frames", type=int, default=200, help="frames per line and camera (default 200)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--taxonomy",
        metavar="PATH_OR_REF",
        help="taxonomy YAML file, or name@N under REPO/taxonomies (default: built-in classes)",
    )
    group.add_argument("--classes", help="comma-separated class ids instead of a taxonomy")
    p.add_argument("--repo", type=Path, default=Path(), help="where name@N refs are looked up")
    p.add_argument("--defect-rate", type=number, default=0.3, help="fraction of defect frames")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels (default 128)")
    p.add_argument(
        "--drift",
        nargs="+",
        default=[],
        metavar="KIND:SITE/LINE:FRAME[:RAMP]",
        help="drift events (supplier_texture, camera_bump, lighting_change) from FRAME on, "
        "blended in over RAMP frames if given",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=run)
    summary = data_sub.add_parser(
        "summary",
        help="frames, class counts and drift events per camera stream of a generated dataset",
    )
    summary.add_argument("data", type=Path, metavar="DIR", help="a `data generate` output")
    summary.add_argument("--format", choices=("text", "json"), default="text")
    summary.set_defaults(run=run_summary)


def parse(ns: argparse.Namespace) -> GenerateArgs:
    if ns.fleet is not None:
        if ns.sites is not None or ns.lines is not None:
            raise UsageError("--sites/--lines make up lines; with --fleet, use --select instead")
        need_directory("--fleet", ns.fleet)
    elif ns.select:
        raise UsageError("--select needs --fleet")
    for name in ("sites", "lines", "frames"):
        value = getattr(ns, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be >= 1, got {value}")
    if ns.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {ns.seed}")
    if not 0.0 <= ns.defect_rate <= 1.0:
        raise UsageError(f"--defect-rate must be between 0 and 1, got {ns.defect_rate}")
    if not 32 <= ns.size <= 1024:
        raise UsageError(f"--size must be between 32 and 1024, got {ns.size}")
    classes = None
    if ns.classes is not None:
        classes = tuple(c.strip() for c in ns.classes.split(",") if c.strip())
        if not classes:
            raise UsageError("--classes: give at least one class id")
    return GenerateArgs(
        out=ns.out,
        sites=2 if ns.sites is None else ns.sites,
        lines=2 if ns.lines is None else ns.lines,
        fleet=ns.fleet,
        select=tuple(ns.select),
        frames=ns.frames,
        seed=ns.seed,
        taxonomy=ns.taxonomy,
        classes=classes,
        repo=ns.fleet if ns.fleet is not None else ns.repo,
        defect_rate=ns.defect_rate,
        size=ns.size,
        drift=tuple(ns.drift),
        force=ns.force,
        quiet=ns.quiet,
    )


class _ProgressLine:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (done < total and now - self.last < 0.2):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        end = "\n" if done == total else ""
        sys.stderr.write(f"\rgenerating frames: {done}/{total} ({rate:.0f} frames/s){end}")
        sys.stderr.flush()


def _taxonomy(
    args: GenerateArgs, spec: FleetSpec | None, fleet_ref: str | None
) -> Taxonomy | list[str]:
    from factory_sim.classes import DEFAULT_CLASSES, TaxonomyLoadError, load_taxonomy

    if args.classes is not None:
        return list(args.classes)
    wanted = args.taxonomy or fleet_ref
    if wanted is None:
        return list(DEFAULT_CLASSES)
    if spec is not None and wanted in spec.taxonomies:
        return spec.taxonomies[wanted]
    try:
        return load_taxonomy(wanted, args.repo)
    except TaxonomyLoadError as exc:
        option = "--taxonomy" if args.taxonomy else f"--fleet {args.fleet}: the lines' taxonomy"
        raise PermanentError(f"{option} {exc}") from None


def _fleet(args: GenerateArgs) -> tuple[FleetSpec, list[Line], str | None, str | None]:
    """The fleet, the selected lines, their taxonomy ref, and a note if they disagree."""
    from factory_sim.fleetlines import common_taxonomy, select_lines
    from linefleet_core.errors import FindingsError, Severity
    from linefleet_core.spec import DirectorySource, load

    assert args.fleet is not None
    spec, findings = load(DirectorySource(args.fleet))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(errors)
    if not spec.lines:
        raise UsageError(f"--fleet {args.fleet}: the fleet declares no lines")
    try:
        lines = select_lines(spec.lines, args.select)
    except ValueError as exc:
        raise UsageError(f"--select: {exc}") from None
    if args.taxonomy or args.classes:
        return spec, lines, None, None
    try:
        ref, note = common_taxonomy(lines)
    except ValueError as exc:
        raise UsageError(f"--fleet {args.fleet}: {exc}") from None
    return spec, lines, ref, note


def run(ns: argparse.Namespace) -> int:
    from factory_sim.dataset import generate
    from factory_sim.fleetlines import fleet_profiles
    from factory_sim.profiles import DriftEvent, LineProfile

    args = parse(ns)
    try:
        events = [DriftEvent.parse(text) for text in args.drift]
    except ValueError as exc:
        raise UsageError(f"--drift {exc}") from None
    spec, notes = None, []
    lines: list[LineProfile] | tuple[int, int] = (args.sites, args.lines)
    fleet_ref = None
    if args.fleet is not None:
        spec, fleet_lines, fleet_ref, note = _fleet(args)
        lines = fleet_profiles(fleet_lines, args.seed)
        notes += [note] if note else []
    source = _taxonomy(args, spec, fleet_ref)
    try:
        manifest = generate(
            args.out,
            taxonomy=source,
            lines=lines,
            frames_per_line=args.frames,
            seed=args.seed,
            defect_rate=args.defect_rate,
            size=args.size,
            events=events,
            progress=_ProgressLine(not args.quiet),
            overwrite=args.force,
        )
    except FileExistsError:
        raise UsageError(
            f"--out {args.out} exists and is not empty; use --force to replace it"
        ) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for warning in [*notes, *manifest.info["warnings"]]:
        print(f"warning: {warning}", file=sys.stderr)
    streams = len(manifest.info["lines"])
    cameras = "" if streams == len(manifest.lines) else f", {streams} cameras"
    labels = manifest.info["taxonomy"] or ",".join(manifest.classes)
    nlines = len(manifest.lines)
    print(
        f"wrote {len(manifest.records)} frames for {nlines} line{'s' if nlines != 1 else ''}"
        f"{cameras} "
        f"({', '.join(manifest.lines)}) labelled {labels} to {args.out}"
    )
    return int(ExitCode.OK)


def run_summary(ns: argparse.Namespace) -> int:
    import json

    from factory_sim.manifest import Manifest
    from factory_sim.summary import render_table, summarize

    if not (ns.data / "dataset.json").is_file():
        raise UsageError(f"{ns.data}: not a generated dataset (no dataset.json)")
    try:
        manifest = Manifest.read(ns.data)
    except (ValueError, KeyError, OSError) as exc:
        raise PermanentError(f"{ns.data}: unreadable dataset ({exc})") from None
    streams = summarize(manifest)
    if ns.format == "json":
        doc = {
            "taxonomy": manifest.info["taxonomy"],
            "classes": manifest.classes,
            "frames": len(manifest.records),
            "streams": [s.as_dict() for s in streams],
        }
        print(json.dumps(doc, indent=2))
        return int(ExitCode.OK)
    print(render_table(streams, manifest.classes))
    labels = manifest.info["taxonomy"] or "a plain class list"
    print(f"{len(manifest.records)} frames, {len(streams)} camera streams, labelled {labels}")
    return int(ExitCode.OK)
