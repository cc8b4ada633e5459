"""`linefleet pr`: pull requests on the local forge, and the sticky comment CI posts anywhere.

    linefleet pr list [--state open|closed|merged|all] [--repo DIR] [--format text|json]
    linefleet pr show N [--repo DIR] [--format text|json]
    linefleet pr merge N [--repo DIR]          # a real git merge of head into base, pushed
    linefleet pr close N [--repo DIR]
    linefleet pr open --head BRANCH [--base main] --title T [--body-file FILE|-] [--label L]
                      [--forge SPEC] [--repo DIR]
    linefleet pr comment --forge SPEC --number N --marker NAME --body-file FILE|-
                                            # prints: created, updated or unchanged

Exit codes: 0 done, 1 refused by the forge (no such PR, conflict, bad token...),
2 usage, 4 forge unreachable (retry later).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linefleet_core.errors import ExitCode, UsageError, need_directory

if TYPE_CHECKING:
    from linefleet_forge.local import LocalForge, LocalPull

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "pr",
        help="pull requests: the local forge, and the plan comment CI posts",
        description="List, show, merge and close pull requests recorded by the local forge "
        "(inside the repository's origin), and post one updated comment on any forge.",
    )
    cmds = p.add_subparsers(dest="pr_command", metavar="ACTION", required=True)

    def local(name: str, help_text: str, numbered: bool = True) -> argparse.ArgumentParser:
        q = cmds.add_parser(name, help=help_text, description=help_text)
        if numbered:
            q.add_argument("number", type=int, help="pull request number")
        q.add_argument("--repo", type=Path, default=Path(), help="fleet repository (default: .)")
        return q

    q = local("list", "list the local forge's pull requests", numbered=False)
    q.add_argument("--state", choices=("open", "closed", "merged", "all"), default="open")
    q.add_argument("--format", choices=("text", "json"), default="text")
    q.set_defaults(run=run_list)
    q = local("show", "show one pull request with its comments")
    q.add_argument("--format", choices=("text", "json"), default="text")
    q.set_defaults(run=run_show)
    local("merge", "merge head into base (git merge --no-ff) and push it").set_defaults(
        run=run_merge
    )
    local("close", "close a pull request without merging").set_defaults(run=run_close)

    q = cmds.add_parser(
        "open",
        help="open a pull request for a pushed branch (or update the open one)",
        description="Open a pull request from --head into --base; if one is already open "
        "for --head, its title and body are updated. Prints the number.",
    )
    q.add_argument("--head", required=True, help="the pushed branch with the change")
    q.add_argument("--base", default="main", help="the branch to merge into (default: main)")
    q.add_argument("--title", required=True)
    q.add_argument("--body-file", help="markdown file with the description ('-' for stdin)")
    q.add_argument("--label", action="append", default=[], help="label (repeatable)")
    q.add_argument("--forge", default="local", help="local (default), github://... or gitea://...")
    q.add_argument("--repo", type=Path, default=Path(), help="repository (for --forge local)")
    q.set_defaults(run=run_open)

    q = cmds.add_parser(
        "comment",
        help="create or update one marked comment on a pull request (used by CI)",
        description="Post FILE as the comment identified by NAME on pull request N; a later "
        "call with the same NAME updates that comment instead of adding another.",
    )
    q.add_argument(
        "--forge", required=True, help="local, github://OWNER/REPO or gitea://HOST/OWNER/REPO"
    )
    q.add_argument("--number", type=int, required=True, help="pull request number")
    q.add_argument("--marker", required=True, help="name of the sticky comment, e.g. plan")
    q.add_argument("--body-file", required=True, help="markdown file to post ('-' for stdin)")
    q.add_argument("--repo", type=Path, default=Path(), help="repository (for --forge local)")
    q.set_defaults(run=run_comment)


def _local(repo: Path) -> LocalForge:
    from linefleet_forge.local import LocalForge

    need_directory("--repo", repo)
    return LocalForge.for_repo(repo)


def _summary(pull: LocalPull) -> dict[str, Any]:
    doc = pull.as_dict()
    doc.pop("format_version")
    doc["url"] = pull.pr.url
    return doc


def run_list(ns: argparse.Namespace) -> int:
    from linefleet_forge import PullState

    forge = _local(ns.repo)
    state = None if ns.state == "all" else PullState(ns.state)
    pulls = forge.list(state)
    if ns.format == "json":
        json.dump(
            {"format_version": 1, "pulls": [_summary(p) for p in pulls]}, sys.stdout, indent=2
        )
        sys.stdout.write("\n")
        return int(ExitCode.OK)
    for pull in pulls:
        pr = pull.pr
        labels = f"  [{', '.join(pr.labels)}]" if pr.labels else ""
        print(f"#{pr.number:<4} {pr.state.value:<7} {pr.head} -> {pr.base}  {pr.title}{labels}")
    what = "pull request(s)" if ns.state == "all" else f"{ns.state} pull request(s)"
    print(f"{len(pulls)} {what} in {forge.store}")
    return int(ExitCode.OK)


def run_show(ns: argparse.Namespace) -> int:
    pull = _local(ns.repo).record(ns.number)
    if ns.format == "json":
        json.dump({"format_version": 1, **_summary(pull)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return int(ExitCode.OK)
    pr = pull.pr
    print(f"#{pr.number} {pr.title}")
    print(f"state:   {pr.state.value}")
    print(f"branch:  {pr.head} -> {pr.base}")
    if pr.labels:
        print(f"labels:  {', '.join(pr.labels)}")
    print(f"opened:  {pull.created}   updated: {pull.updated}")
    if pull.merged_at:
        by = f" by {pull.merged_by}" if pull.merged_by else ""
        print(f"merged:  {pull.merged_at} as {pull.merge_commit}{by}")
    if pull.closed_at:
        print(f"closed:  {pull.closed_at}")
    print(f"record:  {pr.url}")
    if pr.body:
        print(f"\n{pr.body.rstrip()}")
    for comment in pull.comments:
        print(f"\n--- comment {comment.id} ---\n{comment.body.rstrip()}")
    return int(ExitCode.OK)


def run_merge(ns: argparse.Namespace) -> int:
    from linefleet_forge.gitrepo import identity, open_repo

    who = identity(open_repo(ns.repo))  # the approver: who merges, from where they work
    pr = _local(ns.repo).merge(ns.number, merged_by=who)
    print(f"merged #{pr.number}: {pr.head} into {pr.base} (run `git pull` to fetch it)")
    return int(ExitCode.OK)


def run_close(ns: argparse.Namespace) -> int:
    pr = _local(ns.repo).close(ns.number)
    print(f"closed #{pr.number}: {pr.title}")
    return int(ExitCode.OK)


def _read_body(name: str | None) -> str:
    if name is None:
        return ""
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--body-file {name}: cannot read: {exc}") from None


def run_open(ns: argparse.Namespace) -> int:
    from linefleet_forge import forge_from_spec

    body = _read_body(ns.body_file)
    forge = forge_from_spec(ns.forge, ns.repo)
    pr = forge.open_pull_request(ns.head, ns.base, ns.title, body, ns.label)
    print(f"#{pr.number} {pr.state.value}: {pr.head} -> {pr.base}  {pr.url}")
    return int(ExitCode.OK)


def run_comment(ns: argparse.Namespace) -> int:
    from linefleet_forge import CommentOutcome, forge_from_spec, marker_tag

    try:
        marker_tag(ns.marker)
    except ValueError as exc:
        raise UsageError(f"--marker: {exc}") from None
    body = _read_body(ns.body_file)
    forge = forge_from_spec(ns.forge, ns.repo)
    outcome = forge.upsert_comment(ns.number, ns.marker, body)
    said = {
        CommentOutcome.CREATED: "created",
        CommentOutcome.UPDATED: "updated",
        CommentOutcome.UNCHANGED: "unchanged (same text already posted)",
    }[outcome]
    print(f"comment {ns.marker!r} on #{ns.number}: {said}")
    return int(ExitCode.OK)
