"""Propose a change to the fleet: a branch cut from the current base, one commit, a PR.

The reconciler (rollbacks) and the trainer (promotions) both end the same way, so they
share this. Everything happens in a temporary clone of the remote, never in the caller's
working tree:

1. clone `base` from the remote, cut `branch` from its tip (if the base moved since a
   previous proposal, the branch is simply recreated on the new tip: no rebase to fail);
2. let `edit(root)` change files under the clone's root; no change means nothing to propose;
3. commit, and push the branch (forced: the branch belongs to the proposer; a rejected push
   is an error). When the remote branch already holds exactly this change on this base, the
   push is skipped, so proposing twice is a no-op;
4. open the pull request, or update the open one for `branch` (`Forge.open_pull_request`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core.errors import UsageError
from linefleet_forge import gitrepo
from linefleet_forge.base import Forge, ForgeRefused, PullRequest

BOT = ("linefleet", "linefleet@localhost")


@dataclass(frozen=True)
class Proposal:
    branch: str
    base: str
    message: str
    """The commit message."""
    title: str
    body: str
    labels: Sequence[str] = ()
    author: tuple[str, str] = BOT


@dataclass(frozen=True)
class Proposed:
    pull: PullRequest
    commit: str
    pushed: bool
    """False when the remote branch already held exactly this change."""


def remote_url(repo_path: Path | str, remote: str = "origin") -> str:
    """Where `repo_path`'s `remote` points (or the repository itself if it has no remote)."""
    repo = gitrepo.open_repo(repo_path)
    if remote not in [r.name for r in repo.remotes]:
        return str(repo.common_dir)
    url = str(repo.remote(remote).url)
    if "://" not in url and not Path(url).is_absolute() and repo.working_tree_dir:
        candidate = Path(repo.working_tree_dir) / url
        if candidate.exists():
            return str(candidate)
    return url


def propose(
    remote: str, proposal: Proposal, edit: Callable[[Path], None], forge: Forge
) -> Proposed | None:
    """Cut, edit, commit, push and open the PR; None when `edit` changed nothing."""
    import git

    with tempfile.TemporaryDirectory(prefix="linefleet-propose-") as tmp:
        try:
            work = git.Repo.clone_from(
                remote, tmp, branch=proposal.base, single_branch=True, no_tags=True
            )
        except git.GitCommandError as exc:
            raise UsageError(
                f"cannot clone {remote} at {proposal.base}: {(exc.stderr or str(exc)).strip()}"
            ) from None
        work.git.checkout("-B", proposal.branch)
        edit(Path(tmp))
        work.git.add("--all")
        if not work.is_dirty(index=True, working_tree=False, untracked_files=False):
            return None
        name, email = proposal.author
        who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
        who |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        work.git.commit("--quiet", "-m", proposal.message, env={**os.environ, **who})
        head = work.head.commit
        same = _same_change_on_remote(work, proposal.branch, head)
        if same is None:
            try:
                gitrepo.push(work, "origin", f"HEAD:refs/heads/{proposal.branch}", force=True)
            except UsageError as exc:
                raise ForgeRefused(f"proposing {proposal.branch}: {exc}", status=409) from None
        pull = forge.open_pull_request(
            proposal.branch, proposal.base, proposal.title, proposal.body, proposal.labels
        )
        return Proposed(pull, same or str(head.hexsha), pushed=same is None)


def _same_change_on_remote(work: Any, branch: str, head: Any) -> str | None:
    """The remote branch's commit if it is the same tree on the same parent as `head`."""
    import git

    try:
        work.git.fetch("--quiet", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
    except git.GitCommandError:
        return None  # no such branch yet
    theirs = work.commit(f"refs/remotes/origin/{branch}")
    same_tree = theirs.tree.hexsha == head.tree.hexsha
    same_base = [p.hexsha for p in theirs.parents] == [p.hexsha for p in head.parents]
    return str(theirs.hexsha) if same_tree and same_base else None
