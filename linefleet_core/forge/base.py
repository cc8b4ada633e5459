"""What a forge is to linefleet: somewhere to open pull requests and keep one sticky comment.

The reconciler (rollback PRs), the trainer (promotion PRs) and CI (the plan comment) all talk
to a `Forge`; `forge_from_spec` picks the adapter. Every adapter raises only
`TemporaryError` (network, 5xx, rate limit: retry later) or `PermanentError` (refused:
401/403/404/409/422, with the forge's own message).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from linefleet_core.errors import PermanentError


class PullState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    MERGED = "merged"


class CommentOutcome(enum.StrEnum):
    """What `upsert_comment` did to the marked comment."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class PullRequest:
    """A pull request as every forge reports it (the subset linefleet relies on)."""

    number: int
    head: str
    """The source branch name (no `owner:` prefix)."""
    base: str
    title: str
    body: str
    state: PullState
    url: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Merge:
    """A merged pull request as the forge records it: who merged it (the approver)."""

    number: int
    merged_by: str
    """`@login` on GitHub/Gitea, a git identity (`Name <email>`) on the local forge."""


@dataclass(frozen=True)
class Comment:
    id: int
    body: str


class ForgeRefused(PermanentError):
    """The forge answered and said no (4xx); `status` is the HTTP status (0 for the local forge)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def marker_tag(marker: str) -> str:
    """The invisible HTML comment that identifies one sticky comment (`<!-- linefleet:plan -->`)."""
    if not marker or any(c in marker for c in "<>\n") or "--" in marker:
        raise ValueError(f"invalid comment marker {marker!r}")
    return f"<!-- linefleet:{marker} -->"


def with_marker(marker: str, body: str) -> str:
    return f"{marker_tag(marker)}\n{body}"


def find_marked(comments: Sequence[Comment], marker: str) -> Comment | None:
    """The oldest comment carrying `marker` (that is the one we keep updating)."""
    tag = marker_tag(marker)
    return next((c for c in comments if c.body.startswith(tag)), None)


@runtime_checkable
class Forge(Protocol):
    """Pull requests on GitHub, Gitea/Forgejo, or the local forge inside a repository."""

    def open_pull_request(
        self,
        head: str,
        base: str,
        title: str,
        body: str,
        labels: Sequence[str] = (),
    ) -> PullRequest:
        """Open a PR from branch `head` into `base`.

        Idempotent: when an open PR for `head` exists, its title and body are updated (and
        `labels` added) and that PR is returned. The branch must already be pushed.
        """
        ...

    def find_open(self, head: str) -> PullRequest | None:
        """The open PR whose source branch is `head`, if any."""
        ...

    def get(self, number: int) -> PullRequest:
        """PR `number`; `ForgeRefused` (404) if there is none."""
        ...

    def merge_of(self, commit: str) -> Merge | None:
        """The merged pull request whose merge commit is `commit` (None: not merged by a PR)."""
        ...

    def upsert_comment(self, number: int, marker: str, body: str) -> CommentOutcome:
        """Create or update the one comment on PR `number` identified by `marker`.

        Returns what it did: created it, updated it, or left it alone (same text already).
        """
        ...
