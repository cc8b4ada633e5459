"""Git plumbing shared by the reconciler and the trainer (GitPython, imported lazily).

The edge never needs git, so `import linefleet_core.gitrepo` costs nothing until used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core.errors import UsageError
from linefleet_core.spec import FLEET_DIR, TAXONOMY_DIR, YAML_SUFFIXES


def open_repo(path: Path | str) -> Any:
    """A `git.Repo` for `path` (or a parent), or a UsageError naming the folder."""
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(f"{path}: not a git repository") from None


def resolve(repo: Any, rev: str) -> Any:
    """The commit for `rev`, or a UsageError naming the revision."""
    import git

    try:
        return repo.commit(rev)
    except (git.BadName, ValueError, git.GitCommandError):
        raise UsageError(f"unknown git revision {rev!r} in {repo.working_tree_dir}") from None


@dataclass
class GitSource:
    """Fleet files as they are at one commit, read from git objects (no checkout)."""

    commit: Any
    prefix: str = ""  # the fleet repository's folder inside the git repository, if not the root

    @property
    def label(self) -> str:
        return f"commit {self.commit.hexsha[:12]}"

    def files(self) -> Iterator[tuple[str, bytes]]:
        root = self.commit.tree
        if self.prefix:
            try:
                root = root / self.prefix
            except KeyError:
                return
        for top in (FLEET_DIR, TAXONOMY_DIR):
            try:
                tree = root / top
            except KeyError:
                continue
            blobs = [
                item
                for item in tree.traverse()
                if item.type == "blob" and item.name.endswith(YAML_SUFFIXES)
            ]
            for blob in sorted(blobs, key=lambda b: b.path):
                path = blob.path[len(self.prefix) + 1 :] if self.prefix else blob.path
                yield path, blob.data_stream.read()


def push(repo: Any, remote: str, refspec: str, *, force: bool = False) -> None:
    """Push and fail loudly: GitPython reports a rejected push only in the result flags."""
    import git

    try:
        infos = repo.remote(remote).push(refspec=refspec, force=force)
        infos.raise_if_error()
    except git.GitCommandError as exc:
        raise UsageError(
            f"git push {remote} {refspec} failed: {exc.stderr.strip() or exc}"
        ) from None
    for info in infos:
        if info.flags & (info.ERROR | info.REJECTED | info.REMOTE_REJECTED | info.REMOTE_FAILURE):
            raise UsageError(f"git push {remote} {refspec} was rejected: {info.summary.strip()}")
