"""Forge adapters: open pull requests and keep one sticky comment, on GitHub, Gitea/Forgejo,
or the local forge that records pull requests inside the repository.

    forge = forge_from_spec("github://acme/fleet", repo_path=".")
    pr = forge.open_pull_request("rollback/toledo-line-3", "main", title, body, labels=["rollback"])
    forge.upsert_comment(pr.number, "plan", markdown)
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from linefleet_forge.base import (
        Comment,
        CommentOutcome,
        Forge,
        ForgeRefused,
        Merge,
        PullRequest,
        PullState,
        marker_tag,
    )
    from linefleet_forge.factory import forge_from_spec

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


def __getattr__(name: str) -> Any:
    """The adapters are imported on first use: `validate` and `plan` import this package only
    for `linefleet_forge.gitcache` and `gitrepo`, and never open a pull request."""
    if name == "forge_from_spec":
        from linefleet_forge import factory

        return factory.forge_from_spec
    if name in __all__:
        from linefleet_forge import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
