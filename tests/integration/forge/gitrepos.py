"""Real git repositories for the local forge tests: a bare origin and a working clone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git


def origin_and_clone(tmp: Path) -> tuple[Path, Any]:
    """A bare `origin.git` with one commit on main, and a clone of it in `work/`."""
    origin = tmp / "origin.git"
    git.Repo.init(origin, bare=True, initial_branch="main")
    clone = git.Repo.clone_from(origin, tmp / "work")
    configure(clone)
    commit(clone, {"fleet/policy.yaml": "kind: Policy\n"}, "initial fleet")
    clone.git.push("origin", "HEAD:refs/heads/main")
    return origin, clone


def configure(repo: Any) -> None:
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Test Engineer")
        cfg.set_value("user", "email", "test@linefleet.invalid")


def commit(repo: Any, files: dict[str, str], message: str) -> str:
    root = Path(repo.working_tree_dir)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    repo.index.add(list(files))
    return str(repo.index.commit(message).hexsha)


def push_branch(repo: Any, branch: str, files: dict[str, str], base: str = "main") -> str:
    """Commit `files` on a new `branch` started from `base` and push it to origin."""
    repo.git.checkout("-B", branch, f"origin/{base}" if repo.remotes else base)
    sha = commit(repo, files, f"change on {branch}")
    if repo.remotes:
        repo.git.push("origin", f"{branch}:refs/heads/{branch}")
    return sha
