"""`linefleet init DIR`: a new fleet repository with one site, checked, written and committed.

Exit 0 created, 1 a brought taxonomy makes an invalid fleet, 2 usage (DIR not empty without
--force, a flag's value the fleet refuses, such as `--site Bad_Id`, git missing). Nothing is
written unless every file of the new fleet validates.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from linefleet.scaffold import InitOptions
from linefleet_core.atomic import write_tree
from linefleet_core.errors import ExitCode, Finding, FindingsError, Severity, UsageError

ACTIONS_REPO = "linefleet/linefleet"
"""Where linefleet's GitHub Actions live; `--actions OWNER/REPO` points at a fork or mirror."""
AUTHOR = ("linefleet init", "init@linefleet.invalid")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init",
        help="start a fleet repository of your own: policy, one site, workflows, first commit",
        description="Create DIR as a git repository holding a new fleet: fleet/policy.yaml, one "
        "site, an empty model catalogue, a starter taxonomy, schema/ for editors, "
        ".github/CODEOWNERS, the pull-request check and publish workflows (pinned to this "
        "linefleet version), a README and .gitignore; then commit. Exit 0 created, 1 invalid "
        "(e.g. a brought taxonomy), 2 usage (a bad option value, DIR not empty without --force).",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="directory to create (or an empty one)")
    p.add_argument("--site", default="plant-1", help="the first site's id (default: plant-1)")
    p.add_argument("--site-name", help="its display name (default: from the id, 'Plant 1')")
    p.add_argument(
        "--timezone", default="UTC", help="its IANA timezone, e.g. Europe/Berlin (default: UTC)"
    )
    p.add_argument(
        "--approver",
        action="append",
        default=[],
        metavar="OWNER",
        help="who approves the site's changes: @user, @org/team or an e-mail (repeatable)",
    )
    p.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="OWNER",
        help="fleet admins: own the policy, models and workflows (repeatable; default: the "
        "approvers)",
    )
    p.add_argument(
        "--taxonomy",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="bring your taxonomy file(s) instead of the starter one (repeatable: v1, v2, ...)",
    )
    p.add_argument(
        "--actions",
        default=ACTIONS_REPO,
        metavar="OWNER/REPO",
        help=f"GitHub repository of linefleet's actions (default: {ACTIONS_REPO})",
    )
    p.add_argument(
        "--force", action="store_true", help="write into a non-empty DIR (replaces our files)"
    )
    p.add_argument("--no-commit", action="store_true", help="write the files, commit nothing")
    p.set_defaults(run=run)


@dataclass(frozen=True)
class InitArgs:
    dir: Path
    force: bool
    commit: bool


def run(ns: argparse.Namespace) -> int:
    args = InitArgs(ns.dir, ns.force, not ns.no_commit)
    _check_target(args)
    brought = dict(_brought_taxonomies(ns.taxonomy))
    options = InitOptions(
        site_id=ns.site,
        site_name=ns.site_name or ns.site.replace("-", " ").capitalize(),
        timezone=ns.timezone,
        approvers=tuple(ns.approver),
        admins=tuple(ns.admin or ns.approver),
        version=linefleet_version(),
        actions=_actions_repo(ns.actions),
        taxonomies=tuple((target, raw) for target, (_, raw) in brought.items()),
    )
    files = build(options, {target: origin for target, (origin, _) in brought.items()})
    try:
        write_tree(files, args.dir)
    except OSError as exc:
        reason = f"{exc.strerror}: {exc.filename}" if exc.strerror else str(exc)
        raise UsageError(f"{args.dir}: {reason}") from None
    if args.commit:
        commit(args.dir, sorted(files), f"Start the fleet: site {options.site_id}")
    print(f"created {args.dir}: {len(files)} files, site {options.site_id}")
    readme = args.dir / "README.md"
    print(f"next: see {readme} (add a model, a line, a device; validate; open a PR)")
    return int(ExitCode.OK)


def linefleet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("linefleet")
    except PackageNotFoundError:
        raise UsageError("linefleet is not installed as a package: no version to pin") from None


def build(options: InitOptions, origins: dict[str, str] | None = None) -> dict[str, bytes]:
    """Render the repository, check it as `validate` would, and add CODEOWNERS from it.

    `origins` maps a brought taxonomy's repository path to the file the user named, so that
    its findings point at that file.
    """
    from linefleet.scaffold import render as render_files
    from linefleet.scaffold.codeowners import TARGET, render
    from linefleet_core import spec as fleetspec
    from linefleet_core import validation

    files = render_files(options)
    spec, findings = fleetspec.load(_Files(files))
    findings += validation.check(spec)
    errors = [_blame(f, options, origins or {}) for f in findings if f.severity is Severity.ERROR]
    if any(f.path.startswith("--") for f in errors):
        raise OptionFindings(errors)  # the command line is wrong: a usage error
    if errors:
        raise FindingsError(errors)
    files[TARGET.as_posix()] = render(spec).encode()
    return files


class OptionFindings(FindingsError):
    """Findings at least one of which is a flag's value (`--site Bad_Id`): exit 2, usage."""

    exit_code = ExitCode.USAGE


@dataclass
class _Files:
    """The rendered files as a fleet source (what `validate` would read from the folder)."""

    content: dict[str, bytes]
    label: str = "new fleet"

    def files(self) -> Iterator[tuple[str, bytes]]:
        for path in sorted(self.content):
            if path.startswith(("fleet/", "taxonomies/")) and path.endswith((".yaml", ".yml")):
                yield path, self.content[path]


_FLAGS = {
    "id": "--site",
    "name": "--site-name",
    "timezone": "--timezone",
    "approvers": "--approver",
}


def _blame(finding: Finding, options: InitOptions, origins: dict[str, str]) -> Finding:
    """Point a finding at what the user gave: the flag, or the brought taxonomy file."""
    if finding.path == f"fleet/sites/{options.site_id}/site.yaml":
        flag = _FLAGS.get(finding.field.split("[")[0], "")
        return replace(finding, path=flag or finding.path, line=0, col=0)
    if finding.path == "fleet/policy.yaml" and finding.field.startswith("owners"):
        flag = "--approver" if options.admins == options.approvers else "--admin"
        return replace(finding, path=flag, line=0, col=0)
    origin = origins.get(finding.path)
    return replace(finding, path=origin) if origin else finding


def _brought_taxonomies(paths: list[Path]) -> Iterator[tuple[str, tuple[str, bytes]]]:
    """(repository path, (the file named, its content)) for each `--taxonomy FILE`."""
    from linefleet_core import yamlsafe

    seen: dict[str, Path] = {}
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--taxonomy {path}: {exc.strerror}") from None
        try:
            data = yamlsafe.load(str(path), raw).data
        except yamlsafe.YamlProblem as problem:
            where = (str(path), problem.line, problem.col, problem.field, problem.message)
            raise FindingsError([Finding(*where, code="yaml")]) from None
        name = data.get("name") if isinstance(data, dict) else None
        version = data.get("version") if isinstance(data, dict) else None
        if not isinstance(name, str) or not isinstance(version, int) or "/" in name:
            raise UsageError(f"--taxonomy {path}: not a taxonomy (needs `name` and `version`)")
        target = f"taxonomies/{name}/v{version}.yaml"
        if target in seen:
            raise UsageError(f"--taxonomy {path}: {name}@{version} is also in {seen[target]}")
        seen[target] = path
        yield target, (str(path), raw)


def _actions_repo(text: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", text):
        raise UsageError(f"--actions {text!r}: expected OWNER/REPO")
    return text


def _check_target(args: InitArgs) -> None:
    if args.dir.exists() and not args.dir.is_dir():
        raise UsageError(f"{args.dir}: exists and is not a directory")
    if args.dir.is_dir() and any(args.dir.iterdir()) and not args.force:
        raise UsageError(f"{args.dir}: not empty (use --force to write the new fleet into it)")
    if args.commit and shutil.which("git") is None:
        raise UsageError("git is not installed (or use --no-commit)")


def commit(repo: Path, paths: list[str], message: str) -> None:
    """`git init -b main` (unless it is a repository already), add our files, commit them."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *argv], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise UsageError(f"git {' '.join(argv[:2])} in {repo}: {done.stderr.strip()}")
        return done.stdout.strip()

    inside = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != repo.resolve():
        git("init", "--quiet", "--initial-branch=main")
    identity: list[str] = []
    if not _configured(repo, "user.name") or not _configured(repo, "user.email"):
        identity = ["-c", f"user.name={AUTHOR[0]}", "-c", f"user.email={AUTHOR[1]}"]
    git("add", "--", *paths)
    git(*identity, "commit", "--quiet", "--no-verify", "-m", message, "--", *paths)


def _configured(repo: Path, key: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "config", key], capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and bool(done.stdout.strip())
