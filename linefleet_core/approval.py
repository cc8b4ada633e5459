"""Who approved a change: the last link of the lineage model -> run -> dataset -> approver.

A change reaches the fleet by a merge into the published branch. `approval_of(repo, commit)`
names who approved `commit`:

1. the forge's merge record for the pull request whose merge commit is `commit`: the local
   forge records who ran `linefleet pr merge` (`pull request #12 (local forge)`); GitHub and
   Gitea report `merged_by` (`@jdoe`, `pull request #12 (github)`);
2. otherwise, when `commit` is a merge commit, its committer (`merge commit`);
3. otherwise its committer (`commit`: pushed without a merge).

`linefleet publish` records it in every desired state it publishes (`DesiredState.approval`),
`linefleet status` shows it, the report's rollout timeline names it per commit, and
`linefleet trainer champion` tags the champion's registry version with the approval of the
commit that made it serve (`promoted_in`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from linefleet_core.errors import TemporaryError
from linefleet_core.forge.base import Forge
from linefleet_core.wire import Approval

LINE_FILE = re.compile(r"^(?:.*/)?fleet/sites/([^/]+)/lines/([^/]+)\.ya?ml$")
MAX_COMMITS = 500


def approval_of(repo: Any, commit: str, forge: Forge | None = None) -> Approval:
    """Who approved `commit` of `repo` (a `git.Repo`): the forge's merge record, else git.

    `forge` defaults to the local forge of `repo`. A forge that cannot be reached names no
    one: the git committer is recorded, and `via` says the forge was unreachable.
    """
    found = repo.commit(commit)
    sha = str(found.hexsha)
    via = "merge commit" if len(found.parents) > 1 else "commit"
    forge = forge if forge is not None else _local_forge(repo)
    try:
        merge = forge.merge_of(sha)
    except TemporaryError as exc:
        merge, via = None, f"{via} ({getattr(forge, 'name', 'forge')} unreachable: {exc})"
    if merge is not None:
        where = getattr(forge, "name", "forge")
        return Approval(
            by=merge.merged_by,
            via=f"pull request #{merge.number} ({where})",
            commit=sha,
            pull=merge.number,
        )
    return Approval(by=_who(found.committer), via=via, commit=sha)


def _local_forge(repo: Any) -> Forge:
    from linefleet_core.forge.local import LocalForge
    from linefleet_core.forge.localgit import local_origin
    from linefleet_core.gitrepo import open_repo

    origin = local_origin(repo)
    return LocalForge(open_repo(origin) if origin is not None else repo)


def promoted_in(repo: Any, rev: str, ref: str, limit: int = MAX_COMMITS) -> str | None:
    """The newest first-parent commit up to `rev` that made `ref` a line's serving model."""
    for commit in repo.iter_commits(rev, max_count=limit, first_parent=True):
        if not commit.parents:
            continue
        for change in commit.parents[0].diff(commit, create_patch=False):
            if not LINE_FILE.match(change.b_path or ""):
                continue
            if _serving(change.b_blob) == ref and _serving(change.a_blob) != ref:
                return str(commit.hexsha)
    return None


def _serving(blob: Any) -> str | None:
    if blob is None:
        return None
    try:
        doc = yaml.safe_load(blob.data_stream.read())
    except yaml.YAMLError:
        return None  # invalid in history: validate said so on its day
    rollout = doc.get("rollout") if isinstance(doc, dict) else None
    serving = rollout.get("serving") if isinstance(rollout, dict) else None
    return serving if isinstance(serving, str) else None


def _who(actor: Any) -> str:
    name, email = str(actor.name or ""), str(actor.email or "")
    return f"{name} <{email}>" if name and email else name or email or "?"
