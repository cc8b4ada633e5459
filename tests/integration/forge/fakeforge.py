"""A tiny GitHub / Gitea REST server on 127.0.0.1 for the forge adapter tests.

It implements just the endpoints linefleet uses, with the real JSON shapes, status codes and
error bodies (GitHub's 422 "Validation Failed", Gitea's 409 "pull request already exists for
these targets", 401 "Bad credentials"), `Link` pagination, and knobs to inject failures:
`fail_next` (status, body, headers) replies, `stall_seconds` (a slow server) and
`hide_open_once` (a PR opened by someone else between our look-up and our POST).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OWNER, REPO, TOKEN = "acme", "fleet", "s3cret"


@dataclass
class ForgeState:
    flavour: str  # "github" or "gitea"
    branches: set[str] = field(default_factory=lambda: {"main"})
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    fail_next: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    stall_seconds: float = 0.0
    hide_open_once: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_comment_id: int = 1000
    base_url: str = ""

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.flavour == "gitea" else ""

    def add_comment(self, number: int, body: str) -> dict[str, Any]:
        self.next_comment_id += 1
        comment = {"id": self.next_comment_id, "body": body, "user": {"login": "someone"}}
        self.comments.setdefault(number, []).append(comment)
        return comment

    def calls(self, method: str) -> list[str]:
        return [path for m, path in self.requests if m == method]

    def merge(self, number: int, login: str) -> str:
        """Merge pull request `number` as `login` (what the forge's merge button does)."""
        sha = f"{number:040x}"
        self.pulls[number].update(state="closed", merge_commit_sha=sha, merged_by=login)
        return sha


def _pull_json(state: ForgeState, pr: dict[str, Any]) -> dict[str, Any]:
    head = {"ref": pr["head"], "label": f"{OWNER}:{pr['head']}", "sha": "0" * 40}
    doc = {
        "id": 500 + pr["number"],
        "number": pr["number"],
        "state": pr["state"],
        "title": pr["title"],
        "body": pr["body"],
        "html_url": f"https://forge.example/{OWNER}/{REPO}/pull/{pr['number']}",
        "head": head,
        "base": {"ref": pr["base"], "label": f"{OWNER}:{pr['base']}", "sha": "1" * 40},
        "labels": [{"id": state.labels.get(n, 0), "name": n} for n in pr["labels"]],
        "merged_at": "2026-12-01T10:00:00Z" if pr.get("merged_by") else None,
        "merge_commit_sha": pr.get("merge_commit_sha"),
    }
    if pr.get("merged_by"):
        doc["merged_by"] = {"login": pr["merged_by"], "id": 7}
    if state.flavour == "gitea":
        doc["merged"] = bool(pr.get("merged_by"))
    return doc


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------
    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _authorised(self) -> bool:
        scheme = "token" if self.server.state.flavour == "gitea" else "Bearer"
        return self.headers.get("Authorization") == f"{scheme} {TOKEN}"

    def _page(self, items: list[Any], query: dict[str, str], path: str) -> None:
        size_key = "limit" if self.server.state.flavour == "gitea" else "per_page"
        size = int(query.get(size_key, 30))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(items):
            nxt = dict(query, page=str(page + 1))
            url = f"{self.server.state.base_url}{path}?{urllib.parse.urlencode(nxt)}"
            headers["Link"] = f'<{url}>; rel="next"'
        self._reply(200, chunk, headers)

    def _route(self, method: str) -> None:
        state = self.server.state
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query))
        state.requests.append((method, self.path))
        if state.stall_seconds:
            time.sleep(state.stall_seconds)
        if state.fail_next:
            status, body, headers = state.fail_next.pop(0)
            self._reply(status, body, headers)
            return
        if not self._authorised():
            docs = "https://docs.github.com/rest"
            self._reply(401, {"message": "Bad credentials", "documentation_url": docs})
            return
        path = split.path.removeprefix(state.prefix)
        repo = f"/repos/{OWNER}/{REPO}"
        if not path.startswith(repo):
            self._reply(404, {"message": "Not Found"})
            return
        with self.server.lock:
            self._dispatch(method, path.removeprefix(repo), query, split.path)

    def _dispatch(self, method: str, path: str, query: dict[str, str], full: str) -> None:
        state = self.server.state
        body: Any = self._body() if method in ("POST", "PATCH") else {}
        if path == "/pulls" and method == "GET":
            pulls = [p for p in state.pulls.values() if p["state"] == query.get("state", "open")]
            if state.hide_open_once:
                state.hide_open_once = False
                pulls = []
            if state.flavour == "github" and "head" in query:
                pulls = [p for p in pulls if f"{OWNER}:{p['head']}" == query["head"]]
            self._page([_pull_json(state, p) for p in pulls], query, full)
        elif path == "/pulls" and method == "POST":
            self._create_pull(body)
        elif m := re.fullmatch(r"/commits/([0-9a-f]{40})/pulls?", path):
            found = [p for p in state.pulls.values() if p.get("merge_commit_sha") == m[1]]
            if state.flavour == "github" and path.endswith("/pulls"):
                short = [
                    {k: v for k, v in _pull_json(state, p).items() if k != "merged_by"}
                    for p in found
                ]  # GitHub's list omits merged_by
                self._reply(200, short)
            elif state.flavour == "gitea" and path.endswith("/pull") and found:
                self._reply(200, _pull_json(state, found[0]))
            else:
                self._reply(404, {"message": "Not Found"})
        elif m := re.fullmatch(r"/pulls/(\d+)", path):
            pr = state.pulls.get(int(m[1]))
            if pr is None:
                self._reply(404, {"message": "Not Found"})
                return
            if method == "PATCH":
                pr.update({k: body[k] for k in ("title", "body", "base") if k in body})
            self._reply(200, _pull_json(state, pr))
        elif m := re.fullmatch(r"/issues/(\d+)/comments", path):
            number = int(m[1])
            if number not in state.pulls:
                self._reply(404, {"message": "Not Found"})
            elif method == "GET":
                self._page(state.comments.get(number, []), query, full)
            else:
                self._reply(201, state.add_comment(number, body["body"]))
        elif m := re.fullmatch(r"/issues/comments/(\d+)", path):
            cid = int(m[1])
            found = [c for cs in state.comments.values() for c in cs if c["id"] == cid]
            if not found:
                self._reply(404, {"message": "Not Found"})
                return
            found[0]["body"] = body["body"]
            self._reply(200, found[0])
        elif m := re.fullmatch(r"/issues/(\d+)/labels", path):
            pr = state.pulls[int(m[1])]
            names = body["labels"]
            if state.flavour == "gitea":
                by_id = {v: k for k, v in state.labels.items()}
                if any(i not in by_id for i in names):
                    self._reply(422, {"message": "label does not exist"})
                    return
                names = [by_id[i] for i in names]
            else:
                for n in names:
                    state.labels.setdefault(n, len(state.labels) + 1)
            pr["labels"] = list(dict.fromkeys([*pr["labels"], *names]))
            self._reply(200, [{"name": n, "id": state.labels[n]} for n in pr["labels"]])
        elif path == "/labels" and method == "GET":
            items = [{"id": i, "name": n, "color": "0075ca"} for n, i in state.labels.items()]
            self._page(items, query, full)
        elif path == "/labels" and method == "POST":
            state.labels[body["name"]] = len(state.labels) + 1
            self._reply(201, {"id": state.labels[body["name"]], "name": body["name"]})
        else:
            self._reply(404, {"message": "Not Found"})

    def _create_pull(self, body: dict[str, Any]) -> None:
        state = self.server.state
        head, base = body.get("head", ""), body.get("base", "")
        if head not in state.branches or base not in state.branches:
            if state.flavour == "github":
                error = {"resource": "PullRequest", "field": "head", "code": "invalid"}
                self._reply(422, {"message": "Validation Failed", "errors": [error]})
            else:
                self._reply(404, {"message": "GetRefCommitID", "url": "https://forge/api/swagger"})
            return
        dup = [p for p in state.pulls.values() if p["head"] == head and p["state"] == "open"]
        if dup and state.flavour == "github":
            msg = f"A pull request already exists for {OWNER}:{head}."
            self._reply(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "code": "custom", "message": msg}],
                },
            )
            return
        if dup:
            msg = (
                f"pull request already exists for these targets [id: {dup[0]['number']}, "
                f"issue_id: {dup[0]['number']}, head_repo_id: 1, base_repo_id: 1, "
                f"head_branch: {head}, base_branch: {base}]"
            )
            self._reply(409, {"message": msg, "url": "https://forge/api/swagger"})
            return
        number = len(state.pulls) + 1
        pr = {
            "number": number,
            "head": head,
            "base": base,
            "title": body.get("title", ""),
            "body": body.get("body", ""),
            "state": "open",
            "labels": [],
        }
        state.pulls[number] = pr
        self._reply(201, _pull_json(state, pr))

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ForgeState) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state
        self.lock = threading.Lock()


@contextlib.contextmanager
def serve(flavour: str) -> Iterator[ForgeState]:
    state = ForgeState(flavour)
    server = Server(state)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
