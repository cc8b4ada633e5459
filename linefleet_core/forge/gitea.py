"""Gitea and Forgejo (`/api/v1`): the same shapes as GitHub, with three differences.

There is no `head=` filter on the pull list (we page through open PRs), labels are
attached by id (missing ones are created), and a duplicate PR is a 409.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from linefleet_core.forge.base import PullRequest
from linefleet_core.forge.rest import RestForge

LABEL_COLOR = "#0075ca"


class GiteaForge(RestForge):
    name = "gitea"
    page_param = "limit"
    page_size = 50
    already_exists_status = 409  # "pull request already exists for these targets [...]"

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}"}

    def find_open(self, head: str) -> PullRequest | None:
        for item in self.client.pages(
            f"{self.prefix}/pulls", {"state": "open", self.page_param: self.page_size}
        ):
            pr = self.parse_pull(item)
            if pr.head == head and pr.state == "open":
                return pr
        return None

    def merged_pulls(self, commit: str) -> list[Any]:
        return [self.client.call("GET", f"{self.prefix}/commits/{commit}/pull").data]

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        known = {
            str(item["name"]): int(item["id"])
            for item in self.client.pages(
                f"{self.prefix}/labels", {self.page_param: self.page_size}
            )
        }
        ids = []
        for name in labels:
            if name not in known:
                reply = self.client.call(
                    "POST", f"{self.prefix}/labels", {"name": name, "color": LABEL_COLOR}
                )
                known[name] = int(reply.data["id"])
            ids.append(known[name])
        self.client.call("POST", f"{self.prefix}/issues/{number}/labels", {"labels": ids})
