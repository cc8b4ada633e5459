"""What GitHub and Gitea/Forgejo share: pulls, issue comments, and the idempotent open.

The two REST APIs agree on the shape of a pull request (`number`, `title`, `body`, `state`,
`html_url`, `head.ref`, `base.ref`, `labels[].name`) and of issue comments; the subclasses
supply only what differs (auth header, how to find a PR by branch, labels, the paging knob).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linefleet_core.errors import TemporaryError
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
from linefleet_core.forge.http import JsonClient

MAX_COMMENT_CHARS = 65536  # GitHub refuses longer comment bodies with a 422
TRUNCATED = "\n\n… (truncated: the full text is in the CI log)\n"


def fit_comment(text: str, limit: int = MAX_COMMENT_CHARS) -> str:
    """`text`, cut on a line boundary with a note if it is longer than the forge accepts."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(TRUNCATED)]
    return cut[: cut.rfind("\n") + 1 or len(cut)] + TRUNCATED


class RestForge:
    """A forge behind a GitHub-style REST API at `api` (e.g. https://api.github.com)."""

    name = "forge"
    page_param = "per_page"
    page_size = 100
    already_exists_status = 422

    def __init__(self, api: str, owner: str, repo: str, token: str, timeout: float = 30.0) -> None:
        self.owner = owner
        self.repo = repo
        self.client = JsonClient(
            api, self.auth_headers(token), name=f"{self.name} {owner}/{repo}", timeout=timeout
        )

    # -- what subclasses provide ------------------------------------------------------------
    def auth_headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    def find_open(self, head: str) -> PullRequest | None:
        raise NotImplementedError

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        raise NotImplementedError

    def merged_pulls(self, commit: str) -> list[Any]:
        """The forge's pull request JSON objects associated with `commit`."""
        raise NotImplementedError

    def merge_of(self, commit: str) -> Merge | None:
        try:
            found = self.merged_pulls(commit)
        except ForgeRefused as exc:
            if exc.status in (404, 422):  # a commit the forge does not know
                return None
            raise
        for item in found:
            if not isinstance(item, dict) or item.get("merge_commit_sha") != commit:
                continue
            number = int(item["number"])
            if "merged_by" not in item:  # a short form without it: read the pull request
                item = self.client.call("GET", f"{self.prefix}/pulls/{number}").data
            login = ((item or {}).get("merged_by") or {}).get("login")
            if login:
                return Merge(number, f"@{login}")
        return None

    # -- the Forge protocol -----------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"/repos/{self.owner}/{self.repo}"

    def open_pull_request(
        self, head: str, base: str, title: str, body: str, labels: Sequence[str] = ()
    ) -> PullRequest:
        pr = self.find_open(head)
        if pr is None:
            try:
                reply = self.client.call(
                    "POST",
                    f"{self.prefix}/pulls",
                    {"head": head, "base": base, "title": title, "body": body},
                )
                pr = self.parse_pull(reply.data)
            except ForgeRefused as exc:
                # Another writer opened it between our look-up and our POST: update that one.
                if exc.status != self.already_exists_status or "already exists" not in str(exc):
                    raise
                pr = self.find_open(head)
                if pr is None:
                    raise
        if (pr.title, pr.body, pr.base) != (title, body, base):
            pr = self.update(pr.number, {"title": title, "body": body, "base": base})
        missing = [label for label in dict.fromkeys(labels) if label not in pr.labels]
        if missing:
            self.add_labels(pr.number, missing)
            pr = self.get(pr.number)
        return pr

    def get(self, number: int) -> PullRequest:
        return self.parse_pull(self.client.call("GET", f"{self.prefix}/pulls/{number}").data)

    def update(self, number: int, fields: Mapping[str, Any]) -> PullRequest:
        reply = self.client.call("PATCH", f"{self.prefix}/pulls/{number}", fields)
        return self.parse_pull(reply.data)

    def comments(self, number: int) -> list[Comment]:
        items = self.client.pages(
            f"{self.prefix}/issues/{number}/comments", {self.page_param: self.page_size}
        )
        return [Comment(int(c["id"]), str(c.get("body") or "")) for c in items]

    def upsert_comment(self, number: int, marker: str, body: str) -> CommentOutcome:
        text = fit_comment(with_marker(marker, body))
        existing = find_marked(self.comments(number), marker)
        if existing is None:
            self.client.call("POST", f"{self.prefix}/issues/{number}/comments", {"body": text})
            return CommentOutcome.CREATED
        if existing.body == text:
            return CommentOutcome.UNCHANGED
        self.client.call("PATCH", f"{self.prefix}/issues/comments/{existing.id}", {"body": text})
        return CommentOutcome.UPDATED

    # -- shared parsing ---------------------------------------------------------------------
    def parse_pull(self, data: Any) -> PullRequest:
        try:
            merged = bool(data.get("merged") or data.get("merged_at"))
            state = PullState.MERGED if merged else PullState(data["state"])
            return PullRequest(
                number=int(data["number"]),
                head=str(data["head"]["ref"]),
                base=str(data["base"]["ref"]),
                title=str(data.get("title") or ""),
                body=str(data.get("body") or ""),
                state=state,
                url=str(data.get("html_url") or ""),
                labels=tuple(str(lb["name"]) for lb in data.get("labels") or ()),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise TemporaryError(
                f"{self.client.name}: unexpected pull request JSON: {str(data)[:200]}"
            ) from None
