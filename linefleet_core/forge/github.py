"""GitHub (and GitHub Enterprise: point LINEFLEET_GITHUB_API at `https://HOST/api/v3`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from linefleet_core.forge.base import PullRequest
from linefleet_core.forge.rest import RestForge


class GitHubForge(RestForge):
    name = "github"
    page_param = "per_page"
    already_exists_status = 422  # "Validation Failed: A pull request already exists for o:b."

    def auth_headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def find_open(self, head: str) -> PullRequest | None:
        reply = self.client.call(
            "GET",
            f"{self.prefix}/pulls",
            query={"head": f"{self.owner}:{head}", "state": "open", "per_page": 100},
        )
        pulls = [self.parse_pull(item) for item in reply.data or ()]
        return next((p for p in pulls if p.head == head), None)

    def merged_pulls(self, commit: str) -> list[Any]:
        reply = self.client.call("GET", f"{self.prefix}/commits/{commit}/pulls")
        return list(reply.data or ())

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        # GitHub creates unknown labels on the fly.
        self.client.call("POST", f"{self.prefix}/issues/{number}/labels", {"labels": list(labels)})
