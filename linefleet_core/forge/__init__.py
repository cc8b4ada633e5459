"""Forge adapters: open pull requests and keep one sticky comment, on GitHub, Gitea/Forgejo,
or the local forge that records pull requests inside the repository.

    forge = forge_from_spec("github://acme/fleet", repo_path=".")
    pr = forge.open_pull_request("rollback/toledo-line-3", "main", title, body, labels=["rollback"])
    forge.upsert_comment(pr.number, "plan", markdown)
"""

from linefleet_core.forge.base import (
    Comment,
    CommentOutcome,
    Forge,
    ForgeRefused,
    Merge,
    PullRequest,
    PullState,
    marker_tag,
)
from linefleet_core.forge.factory import forge_from_spec

__all__ = [
    "Comment",
    "CommentOutcome",
    "Forge",
    "ForgeRefused",
    "Merge",
    "PullRequest",
    "PullState",
    "forge_from_spec",
    "marker_tag",
]
