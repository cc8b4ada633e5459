"""The local forge: pull requests recorded inside a git repository, for single-machine use.

Where: the records live in the *common git directory* of the forge's root repository, under
`linefleet-forge/pulls/<number>.json` (never in the working tree, so they are not fleet
files and are never committed). The root is chosen by `LocalForge.for_repo(path)`:

* if `path`'s repository has an `origin` remote that is a local path (a bare repo on this
  machine, the usual single-machine setup), the root is that origin, so every clone sees the
  same pull requests and the branches they name are the ones pushed there;
* otherwise the root is `path`'s repository itself.

Each record is written atomically (temp file, fsync, rename) under an exclusive lock, so
two writers never lose an update. `merge` performs a real `git merge --no-ff` of the head
branch into the base branch and pushes it to the root (a rejected push is an error).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from linefleet_core import gitrepo
from linefleet_core.atomic import write_atomic
from linefleet_core.errors import PermanentError
from linefleet_core.forge.base import (
    Comment,
    CommentOutcome,
    ForgeRefused,
    Merge,
    PullRequest,
    PullState,
    find_marked,
    with_marker,
)
from linefleet_core.forge.localgit import local_origin, merge_and_push

STORE = "linefleet-forge"
FORMAT_VERSION = 1


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class LocalPull:
    """A pull request with everything the local forge records about it."""

    pr: PullRequest
    comments: tuple[Comment, ...] = ()
    created: str = ""
    updated: str = ""
    merged_at: str | None = None
    closed_at: str | None = None
    merge_commit: str | None = None
    merged_by: str | None = None
    """Who ran the merge (their git identity): the approver of what the merge publishes."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "number": self.pr.number,
            "head": self.pr.head,
            "base": self.pr.base,
            "title": self.pr.title,
            "body": self.pr.body,
            "state": self.pr.state.value,
            "labels": list(self.pr.labels),
            "comments": [{"id": c.id, "body": c.body} for c in self.comments],
            "created": self.created,
            "updated": self.updated,
            "merged_at": self.merged_at,
            "closed_at": self.closed_at,
            "merge_commit": self.merge_commit,
            "merged_by": self.merged_by,
        }

    @classmethod
    def from_dict(cls, doc: Any, url: str) -> LocalPull:
        pr = PullRequest(
            number=int(doc["number"]),
            head=str(doc["head"]),
            base=str(doc["base"]),
            title=str(doc["title"]),
            body=str(doc["body"]),
            state=PullState(doc["state"]),
            url=url,
            labels=tuple(str(x) for x in doc.get("labels", ())),
        )
        return cls(
            pr=pr,
            comments=tuple(Comment(int(c["id"]), str(c["body"])) for c in doc["comments"]),
            created=str(doc["created"]),
            updated=str(doc["updated"]),
            merged_at=doc.get("merged_at"),
            closed_at=doc.get("closed_at"),
            merge_commit=doc.get("merge_commit"),
            merged_by=doc.get("merged_by"),
        )


class LocalForge:
    name = "local forge"

    def __init__(self, root: Any, *, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        """`root` is the `git.Repo` that holds the branches and the records."""
        self.root = root
        self.store = Path(root.common_dir) / STORE / "pulls"
        self.clock = clock

    @classmethod
    def for_repo(cls, path: Path | str) -> LocalForge:
        repo = gitrepo.open_repo(path)
        origin = local_origin(repo)
        return cls(gitrepo.open_repo(origin) if origin is not None else repo)

    # -- reading -----------------------------------------------------------------------------
    def _path(self, number: int) -> Path:
        return self.store / f"{number}.json"

    def _numbers(self) -> list[int]:
        if not self.store.is_dir():
            return []
        return sorted(int(p.stem) for p in self.store.glob("*.json") if p.stem.isdigit())

    def record(self, number: int) -> LocalPull:
        path = self._path(number)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return LocalPull.from_dict(doc, url=str(path))
        except FileNotFoundError:
            raise ForgeRefused(f"local forge: no pull request #{number}", status=404) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"{path}: corrupt pull request record: {exc}") from None

    def list(self, state: PullState | None = None) -> list[LocalPull]:
        pulls = [self.record(n) for n in self._numbers()]
        return [p for p in pulls if state is None or p.pr.state is state]

    def get(self, number: int) -> PullRequest:
        return self.record(number).pr

    def find_open(self, head: str) -> PullRequest | None:
        return next((p.pr for p in self.list(PullState.OPEN) if p.pr.head == head), None)

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.store.mkdir(parents=True, exist_ok=True)
        with (self.store / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, pull: LocalPull) -> LocalPull:
        path = self._path(pull.pr.number)
        data = json.dumps(pull.as_dict(), indent=2, ensure_ascii=False) + "\n"
        write_atomic(path, data.encode("utf-8"))
        return replace(pull, pr=replace(pull.pr, url=str(path)))

    def _now(self) -> str:
        return self.clock().astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

    def open_pull_request(
        self, head: str, base: str, title: str, body: str, labels: Sequence[str] = ()
    ) -> PullRequest:
        with self._locked():
            for name in (head, base):
                self._require_branch(name)
            if head == base:
                raise ForgeRefused(f"local forge: head and base are both {head!r}", status=422)
            existing = next((p for p in self.list(PullState.OPEN) if p.pr.head == head), None)
            now = self._now()
            if existing is not None:
                merged_labels = tuple(dict.fromkeys((*existing.pr.labels, *labels)))
                pr = replace(existing.pr, base=base, title=title, body=body, labels=merged_labels)
                if pr == existing.pr:
                    return pr
                return self._write(replace(existing, pr=pr, updated=now)).pr
            number = max(self._numbers(), default=0) + 1
            pr = PullRequest(
                number, head, base, title, body, PullState.OPEN, "", tuple(dict.fromkeys(labels))
            )
            return self._write(LocalPull(pr=pr, created=now, updated=now)).pr

    def upsert_comment(self, number: int, marker: str, body: str) -> CommentOutcome:
        text = with_marker(marker, body)
        with self._locked():
            pull = self.record(number)
            existing = find_marked(pull.comments, marker)
            if existing is None:
                next_id = max((c.id for c in pull.comments), default=0) + 1
                comments = (*pull.comments, Comment(next_id, text))
                outcome = CommentOutcome.CREATED
            elif existing.body == text:
                return CommentOutcome.UNCHANGED
            else:
                comments = tuple(
                    Comment(c.id, text) if c.id == existing.id else c for c in pull.comments
                )
                outcome = CommentOutcome.UPDATED
            self._write(replace(pull, comments=comments, updated=self._now()))
            return outcome

    def close(self, number: int) -> PullRequest:
        with self._locked():
            pull = self._open_record(number)
            now = self._now()
            closed = replace(pull.pr, state=PullState.CLOSED)
            return self._write(replace(pull, pr=closed, closed_at=now, updated=now)).pr

    def merge(self, number: int, merged_by: str | None = None) -> PullRequest:
        """Merge head into base with a merge commit, push it to the root, record it.

        `merged_by` (default: the root's git identity) is recorded as the approver.
        """
        with self._locked():
            pull = self._open_record(number)
            sha = merge_and_push(self.root, pull.pr)
            now = self._now()
            merged = replace(pull.pr, state=PullState.MERGED)
            who = merged_by or gitrepo.identity(self.root)
            return self._write(
                replace(
                    pull, pr=merged, merged_at=now, updated=now, merge_commit=sha, merged_by=who
                )
            ).pr

    def merge_of(self, commit: str) -> Merge | None:
        pull = next((p for p in self.list(PullState.MERGED) if p.merge_commit == commit), None)
        if pull is None or not pull.merged_by:
            return None
        return Merge(pull.pr.number, pull.merged_by)

    # -- helpers -----------------------------------------------------------------------------
    def _open_record(self, number: int) -> LocalPull:
        pull = self.record(number)
        if pull.pr.state is not PullState.OPEN:
            raise ForgeRefused(
                f"local forge: pull request #{number} is {pull.pr.state.value}", status=422
            )
        return pull

    def _require_branch(self, name: str) -> None:
        import git

        try:
            self.root.git.check_ref_format("--branch", name)
            self.root.commit(f"refs/heads/{name}")
        except (git.GitCommandError, git.BadName, ValueError):
            where = self.root.common_dir
            raise ForgeRefused(
                f"local forge: branch {name!r} does not exist in {where} (push it first)",
                status=422,
            ) from None
