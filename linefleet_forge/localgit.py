"""The git side of the local forge: where the origin is, and a real merge pushed back to it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from linefleet_core.errors import UsageError
from linefleet_forge import gitrepo
from linefleet_forge.base import ForgeRefused, PullRequest

MERGER = ("linefleet local forge", "forge@linefleet.invalid")


def local_origin(repo: Any) -> Path | None:
    """The path of `origin` when it is a repository on this machine."""
    if "origin" not in [r.name for r in repo.remotes]:
        return None
    url = str(repo.remote("origin").url)
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    elif "://" in url or (":" in url and not Path(url).exists()):
        return None  # ssh/https, or scp-like host:path
    path = Path(url)
    if not path.is_absolute() and repo.working_tree_dir is not None:
        path = Path(repo.working_tree_dir) / path
    return path if path.exists() else None


def merge_and_push(root: Any, pr: PullRequest) -> str:
    """`git merge --no-ff head` into base; returns the new base commit."""
    import git

    message = f"Merge pull request #{pr.number} from {pr.head}\n\n{pr.title}"
    if not root.bare and not root.head.is_detached and root.active_branch.name == pr.base:
        # The base is checked out here: merge in place (a push to it would be refused).
        if root.is_dirty(untracked_files=False):
            raise ForgeRefused(
                f"local forge: {root.working_tree_dir} has uncommitted changes on {pr.base}; "
                "commit or discard them before merging",
                status=409,
            )
        _merge(root, f"refs/heads/{pr.head}", message, pr)
        return str(root.head.commit.hexsha)
    with tempfile.TemporaryDirectory(prefix="linefleet-merge-") as tmp:
        work = git.Repo.clone_from(root.common_dir, tmp, branch=pr.base)
        _merge(work, f"origin/{pr.head}", message, pr)
        try:
            gitrepo.push(work, "origin", f"HEAD:refs/heads/{pr.base}")
        except UsageError as exc:
            raise ForgeRefused(f"local forge: merging #{pr.number}: {exc}", status=409) from None
        return str(work.head.commit.hexsha)


def _merge(work: Any, rev: str, message: str, pr: PullRequest) -> None:
    import git

    name, email = MERGER
    who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
    who |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    try:
        work.git.merge("--no-ff", "--no-edit", "-m", message, rev, env={**os.environ, **who})
    except git.GitCommandError as exc:
        with contextlib.suppress(git.GitCommandError):
            work.git.merge("--abort")
        detail = (exc.stdout or exc.stderr or str(exc)).strip().splitlines()
        raise ForgeRefused(
            f"local forge: pull request #{pr.number} ({pr.head} into {pr.base}) does not merge "
            f"cleanly; rebase {pr.head} on {pr.base}: {' '.join(detail[-3:])}",
            status=409,
        ) from None
