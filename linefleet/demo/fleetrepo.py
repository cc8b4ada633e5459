"""The demo's fleet repository: a working clone with a bare `origin` (GitPython), and the
round-trip YAML edits (ruamel.yaml) an engineer would make by hand in a pull request."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from linefleet_core.placement import line_path
from linefleet_core.yamledit import edit

# What the demo copies from this checkout's example fleet: the Toledo plant (3 edge devices,
# 5 lines), the shared policy, the model catalogue with its artifacts, taxonomies and schemas.
EXAMPLE_PATHS = (
    "fleet/policy.yaml",
    "fleet/models",
    "fleet/artifacts",
    "fleet/sites/toledo",
    "taxonomies",
    "schema",
)
AUTHOR = ("linefleet demo", "demo@linefleet.invalid")


def create(example: Path, work: Path, origin: Path) -> str:
    """Copy the example fleet into `work`, commit it, and push it to a new bare `origin`."""
    import git

    for rel in EXAMPLE_PATHS:
        source, target = example / rel, work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    repo = git.Repo.init(work, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", AUTHOR[0])
        config.set_value("user", "email", AUTHOR[1])
    repo.git.add("--all")
    repo.index.commit("Toledo plant from the linefleet example fleet")
    git.Repo.init(origin, bare=True, initial_branch="main")
    repo.create_remote("origin", str(origin))
    repo.git.push("--set-upstream", "origin", "main")
    return repo.head.commit.hexsha


def commit_and_push(work: Path, message: str) -> str:
    """Commit every change in the working tree and push it to origin/main."""
    import git

    repo = git.Repo(work)
    repo.git.add("--all")
    repo.index.commit(message)
    repo.remote("origin").push("main").raise_if_error()
    return repo.head.commit.hexsha


def pull(work: Path) -> str:
    import git

    repo = git.Repo(work)
    repo.git.pull("--ff-only", "origin", "main")
    return repo.head.commit.hexsha


def revert(work: Path, commit: str) -> str:
    """`git revert` one commit on main and push it."""
    import git

    repo = git.Repo(work)
    repo.git.revert("--no-edit", commit)
    repo.remote("origin").push("main").raise_if_error()
    return repo.head.commit.hexsha


def head(work: Path) -> str:
    import git

    return git.Repo(work).head.commit.hexsha


# round-trip YAML edits (linefleet_core.yamledit) -----------------------------------------------
def line_file(work: Path, line: str) -> Path:
    return work / line_path(line)


def set_rollout(work: Path, line: str, **fields: Any) -> None:
    """Set (or, with the value None, remove) keys of a line's `rollout`."""

    def change(doc: Any) -> None:
        rollout = doc["rollout"]
        for key, value in fields.items():
            if value is None:
                rollout.pop(key, None)
            else:
                rollout[key] = value

    edit(line_file(work, line), change)


def rollout(work: Path, line: str) -> dict[str, Any]:
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load(line_file(work, line).read_text(encoding="utf-8"))
    value: dict[str, Any] = doc["rollout"]
    return value


def add_model_version(work: Path, model: str, entry: dict[str, Any]) -> None:
    def change(doc: Any) -> None:
        doc["versions"].append(entry)

    edit(work / "fleet" / "models" / f"{model}.yaml", change)


def set_artifacts(work: Path, model: str, artifacts: dict[str, dict[str, Any]]) -> int:
    """Replace each version's artifact whose url is a key of `artifacts`; return how many."""
    changed = 0

    def change(doc: Any) -> None:
        nonlocal changed
        for version in doc["versions"]:
            new = artifacts.get(str(version["artifact"]["url"]))
            if new is not None:
                version["artifact"] = new
                changed += 1

    edit(work / "fleet" / "models" / f"{model}.yaml", change)
    return changed


def set_site_field(work: Path, site: str, key: str, value: Any) -> None:
    def change(doc: Any) -> None:
        doc[key] = value

    edit(work / "fleet" / "sites" / site / "site.yaml", change)


def set_min_holdout_frames(work: Path, frames: int) -> int:
    """Set the policy's `promotion.min_holdout_frames`; return the value it had.

    The demo's holdout is a dozen frames a line: no interval that small is narrow enough for
    the example's floors and interval width, so those are lifted too (and said so).
    """
    old = 0

    def change(doc: Any) -> None:
        nonlocal old
        old = int(doc["promotion"]["min_holdout_frames"])
        doc["promotion"]["min_holdout_frames"] = frames
        doc["promotion"].pop("max_interval_width", None)
        doc.pop("floors", None)

    edit(work / "fleet" / "policy.yaml", change)
    return old


def set_heartbeat(work: Path, seconds: int) -> int:
    """Set the policy's `heartbeat_seconds` (how often devices report); return the old value."""
    old = 0

    def change(doc: Any) -> None:
        nonlocal old
        old = int(doc["heartbeat_seconds"])
        doc["heartbeat_seconds"] = seconds

    edit(work / "fleet" / "policy.yaml", change)
    return old


def keep_evidence_of(work: Path, model: str, site: str) -> int:
    """Remove catalogue evidence for lines outside `site`; return how many entries went."""
    removed = 0

    def change(doc: Any) -> None:
        nonlocal removed
        for version in doc["versions"]:
            evaluation = version.get("evaluation") or {}
            for line in [k for k in evaluation if not str(k).startswith(f"{site}/")]:
                del evaluation[line]
                removed += 1
            if "evaluation" in version and not evaluation:
                del version["evaluation"]

    edit(work / "fleet" / "models" / f"{model}.yaml", change)
    return removed


def model_versions(work: Path, model: str) -> list[dict[str, Any]]:
    from ruamel.yaml import YAML

    path = work / "fleet" / "models" / f"{model}.yaml"
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    versions: list[dict[str, Any]] = doc["versions"]
    return versions


def fetch(work: Path) -> None:
    import git

    git.Repo(work).remote("origin").fetch()
